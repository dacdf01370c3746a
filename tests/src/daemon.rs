//! A pktd daemon inside the test process, on a temporary socket, with the
//! policy the test gives; and clients that connect as another user.

use std::{
    os::unix::net::UnixStream,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    thread::JoinHandle,
};

use pktd_daemon::{PolicyStore, policy::Policy};
use tokio_util::sync::CancellationToken;

use crate::sys;

static NEXT_DAEMON: AtomicU32 = AtomicU32::new(0);

/// A running daemon; stopped (sessions ended, programs detached) on drop.
pub struct TestDaemon {
    /// The daemon's socket.
    pub socket: PathBuf,
    /// The daemon's policy, replaceable as SIGHUP would.
    pub policy: Arc<PolicyStore>,
    dir: PathBuf,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl TestDaemon {
    /// Starts a daemon with `policy` on its own runtime thread.
    pub fn start(policy: Policy) -> Self {
        Self::start_with(policy, pktd_daemon::Options::default())
    }

    /// Starts a daemon with `policy` and `options` on its own runtime
    /// thread. Clients' expressions are compiled by the built `pktd`'s
    /// helper (this process is a test, not pktd) unless `options` name
    /// another.
    pub fn start_with(policy: Policy, mut options: pktd_daemon::Options) -> Self {
        options
            .compile_helper
            .get_or_insert_with(|| crate::process::bin_path("pktd"));
        let id = NEXT_DAEMON.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pktd-test-{}-{id}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the socket directory");
        let socket = dir.join("pktd.sock");
        let store = PolicyStore::new(policy);
        let shutdown = CancellationToken::new();
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("binding");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        // Everyone may connect; the policy decides what they may do.
        std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .expect("socket permissions");
        let thread = {
            let store = store.clone();
            let shutdown = shutdown.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::UnixListener::from_std(listener).expect("listener");
                    pktd_daemon::run_with(listener, store, shutdown, options)
                        .await
                        .expect("the daemon failed");
                });
            })
        };
        Self {
            socket,
            policy: store,
            dir,
            shutdown,
            thread: Some(thread),
        }
    }

    /// A capture builder aimed at this daemon.
    pub fn capture(&self, interface: &str) -> libwire::CaptureBuilder {
        libwire::CaptureBuilder::new(interface).socket(&self.socket)
    }

    /// Stops the daemon and waits until it has ended every session.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Connects to `socket` as user `uid` / group `gid` (the daemon reads that
/// identity with SO_PEERCRED): a short-lived thread drops its own
/// credentials, connects, and hands the connected stream back.
pub fn connect_as(socket: &std::path::Path, uid: u32, gid: u32) -> tokio::net::UnixStream {
    let socket = socket.to_owned();
    let stream = std::thread::spawn(move || {
        sys::drop_thread_credentials(uid, gid).expect("changing this thread's credentials");
        UnixStream::connect(&socket).expect("connecting")
    })
    .join()
    .expect("the connecting thread panicked");
    stream.set_nonblocking(true).expect("non-blocking stream");
    tokio::net::UnixStream::from_std(stream).expect("a tokio stream")
}

/// Opens `builder`'s capture as user `uid` / group `gid`.
pub async fn open_as(
    builder: libwire::CaptureBuilder,
    socket: &std::path::Path,
    uid: u32,
    gid: u32,
) -> Result<libwire::Capture, libwire::Error> {
    builder.open_on(connect_as(socket, uid, gid)).await
}
