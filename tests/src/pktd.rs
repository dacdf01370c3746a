//! The real `pktd` binary, started with a policy of the test's on a
//! socket in a scratch directory, as the hostile-client tests attack it.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::process::{Running, bin_path};

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory named after `tag` and this process.
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pktd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `pktd`; killed on drop if still running.
pub struct RealDaemon {
    /// Its socket.
    pub socket: PathBuf,
    /// The process.
    pub process: Running,
    /// Its scratch directory (socket, policy).
    pub dir: Scratch,
}

impl RealDaemon {
    /// Starts `pktd --policy POLICY ARGS` (the policy's text written to a
    /// file) and waits until it serves.
    pub fn start(tag: &str, policy: &str, args: &[&str]) -> Self {
        Self::start_in(Scratch::new(tag), policy, args)
    }

    /// [`RealDaemon::start`] in a scratch directory that exists already
    /// (another daemon's, for a restart).
    pub fn start_in(dir: Scratch, policy: &str, args: &[&str]) -> Self {
        let socket = dir.0.join("pktd.sock");
        let policy_file = dir.0.join("policy.toml");
        std::fs::write(&policy_file, policy).expect("writing the policy");
        // A daemon killed leaves its socket: this one takes the name.
        let _ = std::fs::remove_file(&socket);
        let mut command = Command::new(bin_path("pktd"));
        command
            .arg("--socket")
            .arg(&socket)
            .arg("--policy")
            .arg(&policy_file)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null());
        let mut process = Running::spawn(command);
        assert!(
            process.wait_for_stderr("pktd serving", Duration::from_secs(10)),
            "pktd did not start: {:?}",
            process.stderr_lines
        );
        Self {
            socket,
            process,
            dir,
        }
    }

    /// Kills the daemon with SIGKILL, as the OOM killer does, and waits
    /// until it is gone; its scratch directory, for the next one.
    pub fn kill(mut self) -> Scratch {
        self.process.signal("KILL");
        assert!(
            self.process.wait(Duration::from_secs(5)).is_some(),
            "pktd outlived SIGKILL"
        );
        let Self { process, dir, .. } = self;
        drop(process);
        dir
    }

    /// Sends SIGTERM and waits for the daemon to exit: how long it took
    /// (panics if it has not exited within `within`).
    pub fn terminate(mut self, within: Duration) -> Duration {
        let started = Instant::now();
        self.process.signal("TERM");
        let status = self.process.wait(within);
        let took = started.elapsed();
        assert!(
            status.is_some(),
            "pktd did not exit within {within:?} of SIGTERM: {:?}",
            self.process.stderr_lines
        );
        took
    }

    /// [`RealDaemon::terminate`], keeping the scratch directory (for a
    /// daemon after it).
    pub fn terminate_keeping(mut self, within: Duration) -> Scratch {
        self.process.signal("TERM");
        let status = self.process.wait(within);
        assert!(
            status.is_some(),
            "pktd did not exit within {within:?} of SIGTERM: {:?}",
            self.process.stderr_lines
        );
        let Self { process, dir, .. } = self;
        drop(process);
        dir
    }
}
