//! Throw-away network labs: two network namespaces joined by a veth pair,
//! uniquely named per process and lab, removed when the [`Lab`] is dropped
//! (also when the test panics).

use std::{
    os::fd::OwnedFd,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use pktd_daemon::netns::Netns;

use crate::sys;

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// Two namespaces, `sender` and `capture`, with a veth pair between them:
/// `sender_if` in the first, `capture_if` in the second, both up, with
/// addresses 10.77.L.1/24 and 10.77.L.2/24 inside them.
pub struct Lab {
    /// Name (ip netns) of the namespace traffic is sent from.
    pub sender_ns: String,
    /// Name (ip netns) of the namespace pktd captures in.
    pub capture_ns: String,
    /// The veth end in `sender_ns`.
    pub sender_if: String,
    /// The veth end in `capture_ns`.
    pub capture_if: String,
    /// L of the addresses 10.77.L.1 (sender) and 10.77.L.2 (capture).
    pub subnet: u8,
}

fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("running ip {args:?}: {err}"));
    assert!(
        output.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Lab {
    /// Creates the namespaces and the veth pair. Needs root.
    pub fn new() -> Self {
        let lab = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}x{lab}", std::process::id());
        let subnet = (lab % 250) as u8;
        let this = Self {
            sender_ns: format!("pktd-test-{id}-s"),
            capture_ns: format!("pktd-test-{id}-c"),
            sender_if: format!("pks{id}"),
            capture_if: format!("pkc{id}"),
            subnet,
        };
        assert!(this.sender_if.len() <= 15, "interface name too long");
        // Registered for clean-up before anything is created.
        ip(&["netns", "add", &this.sender_ns]);
        ip(&["netns", "add", &this.capture_ns]);
        ip(&[
            "-n",
            &this.sender_ns,
            "link",
            "add",
            &this.sender_if,
            "type",
            "veth",
            "peer",
            "name",
            &this.capture_if,
            "netns",
            &this.capture_ns,
        ]);
        // No IPv6: its autoconfiguration traffic (router and neighbour
        // solicitations, MLD) would reach the clients beside the test's frames.
        for ns in [&this.sender_ns, &this.capture_ns] {
            let output = Command::new("ip")
                .args(["netns", "exec", ns, "sysctl", "-qw"])
                .args([
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ])
                .output()
                .expect("running sysctl");
            assert!(output.status.success(), "disabling IPv6 in {ns}");
        }
        for (ns, ifname, host) in [
            (&this.sender_ns, &this.sender_if, 1),
            (&this.capture_ns, &this.capture_if, 2),
        ] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.77.{subnet}.{host}/24"),
                "dev",
                ifname,
            ]);
            ip(&["-n", ns, "link", "set", ifname, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        this
    }

    /// The capture namespace as pktd names it.
    pub fn capture_netns(&self) -> Netns {
        Netns::parse(&self.capture_ns).expect("a valid netns name")
    }

    /// The sender namespace as pktd names it.
    pub fn sender_netns(&self) -> Netns {
        Netns::parse(&self.sender_ns).expect("a valid netns name")
    }

    /// Bridges `capture_if` to a new veth port in the capture namespace and
    /// returns the port's name. Frames from the sender reach the bridge
    /// with their outer VLAN tag already moved into skb metadata by the
    /// receive path, and leave through the port that way: the egress hook
    /// of the port sees tags the way a VLAN device or NIC driver hands
    /// them over. (This kernel has no 8021q module for a VLAN device.)
    pub fn bridge_capture_to_new_port(&self) -> String {
        let suffix = &self.capture_if[3..];
        let bridge = format!("pkb{suffix}");
        let port = format!("pkp{suffix}");
        let peer = format!("pkq{suffix}");
        let ns = self.capture_ns.as_str();
        ip(&["-n", ns, "link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "-n", ns, "link", "add", &port, "type", "veth", "peer", "name", &peer,
        ]);
        for member in [&self.capture_if, &port] {
            ip(&["-n", ns, "link", "set", member, "master", &bridge]);
        }
        for link in [&bridge, &port, &peer] {
            ip(&["-n", ns, "link", "set", link, "up"]);
        }
        port
    }

    /// An AF_PACKET socket on `sender_if`, for sending raw frames.
    pub fn sender(&self) -> Sender {
        self.sender_on(&self.sender_if)
    }

    /// An AF_PACKET socket on interface `ifname` of the sender namespace.
    pub fn sender_on(&self, ifname: &str) -> Sender {
        let ifname = ifname.to_owned();
        let socket = self
            .sender_netns()
            .run(move || {
                let index =
                    pktd_daemon::netns::interface_index(&ifname).expect("the sender interface");
                sys::packet_socket(index).expect("an AF_PACKET socket")
            })
            .expect("entering the sender namespace");
        Sender { socket }
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it
        // the pair. Errors are ignored: clean-up must not panic in a panic.
        for ns in [&self.sender_ns, &self.capture_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Sends raw Ethernet frames out of the lab's sender interface.
pub struct Sender {
    socket: OwnedFd,
}

impl Sender {
    /// Sends one frame as is (VLAN tags included).
    pub fn send(&self, frame: &[u8]) {
        sys::send_frame(&self.socket, frame).expect("sending a frame");
    }

    /// Sends `frames` with one sendmmsg call; how many the kernel took.
    pub fn send_batch(&self, frames: &[Vec<u8>]) -> std::io::Result<usize> {
        sys::send_frames(&self.socket, frames)
    }
}
