//! BPF_PROG_TEST_RUN of an attachment's programs: the differential tests'
//! kernel verdicts and the benchmarks' cost per packet.

use pktd_common::{DIR_IN, DIR_OUT};
use pktd_translate::{Entry, Hook};

use super::{attachment::Attachment, error::CaptureError};
use crate::sys;

impl Attachment {
    /// Runs the program on `frame` with BPF_PROG_TEST_RUN, as if it had
    /// arrived (DIR_IN) or been sent (DIR_OUT), through the attachment's
    /// entry program as on the interface; `repeat` runs, and the kernel's
    /// average duration per run in nanoseconds.
    pub fn test_run(&self, direction: u32, frame: &[u8], repeat: u32) -> Result<u64, CaptureError> {
        let entry = match (self.hook, direction) {
            (Hook::Xdp, DIR_IN) => Entry::Xdp,
            (Hook::Xdp, _) => {
                return Err(CaptureError::InvalidSpec {
                    message: "XDP sees received packets only".to_owned(),
                });
            }
            (Hook::Tc, DIR_OUT) => Entry::Egress,
            (Hook::Tc, _) => Entry::Ingress,
        };
        run(self.loaded_entry(entry)?, frame, repeat)
    }

    /// A handle that test-runs the attachment's entry program at `entry`
    /// without the attachment: packets beside changes to it (a thread of
    /// its own).
    pub fn test_runner(&self, entry: Entry) -> Result<TestRunner, CaptureError> {
        let program = self
            .loaded_entry(entry)?
            .try_clone_to_owned()
            .map_err(|source| CaptureError::Io {
                operation: "duplicating a program fd",
                source,
            })?;
        Ok(TestRunner(program))
    }

    /// Like [`Attachment::test_run`], for the program that does nothing:
    /// the fixed cost of a test run, which benchmarks subtract.
    pub fn test_run_empty(&self, frame: &[u8], repeat: u32) -> Result<u64, CaptureError> {
        run(self.kernel.empty_program(), frame, repeat)
    }
}

fn run(
    program: std::os::fd::BorrowedFd<'_>,
    frame: &[u8],
    repeat: u32,
) -> Result<u64, CaptureError> {
    sys::test_run(program, frame, repeat)
        .map(u64::from)
        .map_err(|source| CaptureError::Io {
            operation: "test-running the kernel program",
            source,
        })
}

/// Test-runs an attachment's entry program (see
/// [`Attachment::test_runner`]).
pub struct TestRunner(std::os::fd::OwnedFd);

impl TestRunner {
    /// Runs the program once on `frame`.
    pub fn run(&self, frame: &[u8]) -> Result<u64, CaptureError> {
        use std::os::fd::AsFd;
        run(self.0.as_fd(), frame, 1)
    }
}
