//! Running under a service manager (systemd, or anything that speaks its
//! protocols): the listening socket it hands over (socket activation,
//! `pktd.socket`) and the state it is told (`Type=notify`).
//!
//! Both are no-ops without a manager: no LISTEN_FDS, no NOTIFY_SOCKET.

use std::os::unix::net::UnixListener;

use sd_notify::NotifyState;

/// Why a handed-over socket cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// LISTEN_FDS/LISTEN_PID are malformed, or a descriptor is unusable.
    #[error("the sockets the service manager handed over: {0}")]
    Listen(#[from] std::io::Error),
    /// More than one socket: pktd serves one.
    #[error("the service manager handed over {0} sockets; pktd serves one (one ListenStream=)")]
    TooMany(usize),
}

/// The listening socket the service manager handed over, if it did. Call
/// once, before any thread starts: it reads and clears LISTEN_PID and
/// LISTEN_FDS, so that no child inherits them.
pub fn inherited_listener() -> Result<Option<UnixListener>, ServiceError> {
    let fds: Vec<_> = sd_notify::listen_fds()?.collect();
    match fds.as_slice() {
        [] => Ok(None),
        [fd] => Ok(Some(crate::sys::adopt_listener(*fd)?)),
        more => Err(ServiceError::TooMany(more.len())),
    }
}

/// A state the service manager is told.
#[derive(Clone, Copy, Debug)]
pub enum State<'a> {
    /// Serving: the kernel program loads, the policy is in force, the
    /// socket accepts (`READY=1`).
    Ready(&'a str),
    /// Reading the policy again (`RELOADING=1` with the time, as
    /// `Type=notify-reload` wants); `Ready` follows, whatever the outcome.
    Reloading,
    /// Ending sessions and detaching (`STOPPING=1`).
    Stopping,
}

/// Tells the service manager `state`, if there is one. A manager that
/// cannot be told is no reason to stop serving: a failure is logged.
pub fn notify(state: State<'_>) {
    let result = match state {
        State::Ready(status) => {
            sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)])
        }
        State::Reloading => NotifyState::monotonic_usec_now().and_then(|now| {
            sd_notify::notify(
                false,
                &[
                    NotifyState::Reloading,
                    now,
                    NotifyState::Status("reloading the policy"),
                ],
            )
        }),
        State::Stopping => sd_notify::notify(
            false,
            &[NotifyState::Stopping, NotifyState::Status("stopping")],
        ),
    };
    if let Err(err) = result {
        tracing::warn!(%err, ?state, "cannot notify the service manager");
    }
}
