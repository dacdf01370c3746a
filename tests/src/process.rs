//! The workspace's own binaries (`pktd`, `pktcap`) run as child processes,
//! killed when the handle is dropped.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// Path of a binary built into the same target directory as the running
/// test (`cargo xtask test` builds every binary before testing).
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>; a binary
    // (pktd-perf) is in target/<profile> itself.
    let mut directory = exe.parent().expect("a target directory");
    if directory.file_name().is_some_and(|name| name == "deps") {
        directory = directory.parent().expect("a target directory");
    }
    let path = directory.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` (cargo xtask test does)",
        path.display()
    );
    path
}

/// A child process whose standard error is read line by line in the
/// background.
pub struct Running {
    /// The process.
    pub child: Child,
    stderr: mpsc::Receiver<String>,
    /// Every stderr line seen so far.
    pub stderr_lines: Vec<String>,
}

impl Running {
    /// Starts `command` with piped stderr (stdout as the command says).
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {command:?}: {err}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stderr: receiver,
            stderr_lines: Vec::new(),
        }
    }

    /// Waits up to `timeout` for a stderr line containing `needle`.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        if self.stderr_lines.iter().any(|line| line.contains(needle)) {
            return true;
        }
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.stderr_lines.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Sends `signal` (e.g. libc::SIGTERM) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `timeout` for the process to exit; its status, and all
    /// of its stderr.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting") {
                // Collect the rest of stderr (the reader ends at EOF).
                while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(200)) {
                    self.stderr_lines.push(line);
                }
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
