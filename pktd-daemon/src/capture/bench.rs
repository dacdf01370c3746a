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
