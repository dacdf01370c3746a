//! Why an injection sender could not be set up.

use pktd_filter::FilterError;

use crate::netns::NetnsError;

/// Setting an injector up failed.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The namespace could not be opened or entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// No such interface in the namespace.
    #[error("no interface {interface:?} in network namespace {netns}")]
    NoInterface {
        /// The interface name.
        interface: String,
        /// The namespace.
        netns: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The AF_PACKET socket could not be opened or bound.
    #[error("cannot open an AF_PACKET socket on {interface}")]
    Socket {
        /// The interface name.
        interface: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The interface's MTU, MAC or addresses could not be read.
    #[error("cannot read the {what} of {interface}")]
    InterfaceInfo {
        /// The interface name.
        interface: String,
        /// "MTU", "hardware address" or "addresses".
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The interface's frames do not start with an Ethernet header.
    #[error("{interface} is not an Ethernet interface (hardware type {hardware_type})")]
    NotEthernet {
        /// The interface name.
        interface: String,
        /// Its `ARPHRD_*` type.
        hardware_type: u16,
    },
    /// The injection filter does not compile (the policy checks it at
    /// load, so this means libpcap changed its mind).
    #[error("injection filter {expression:?}")]
    Filter {
        /// The expression.
        expression: String,
        /// The cause.
        #[source]
        source: FilterError,
    },
}
