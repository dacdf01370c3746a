//! BPF_PROG_TEST_RUN of an attachment's programs: the differential tests'
//! kernel verdicts and the benchmarks' cost per packet.

use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};
use pktd_common::{DIR_IN, DIR_OUT, names};
use pktd_translate::Hook;

use super::{attachment::Attachment, error::CaptureError, object::program_error};

impl Attachment {
    /// Runs the program on `frame` with BPF_PROG_TEST_RUN, as if it had
    /// arrived (DIR_IN) or been sent (DIR_OUT); `repeat` runs, and the
    /// kernel's average duration per run in nanoseconds.
    pub fn test_run(&self, direction: u32, frame: &[u8], repeat: u32) -> Result<u64, CaptureError> {
        if self.hook == Hook::Xdp {
            if direction != DIR_IN {
                return Err(CaptureError::InvalidSpec {
                    message: "XDP sees received packets only".to_owned(),
                });
            }
            return self.test_run_xdp(frame, repeat);
        }
        let name = if direction == DIR_OUT {
            names::PROG_EGRESS
        } else {
            names::PROG_INGRESS
        };
        self.test_run_program(name, frame, repeat)
    }

    /// Like [`Attachment::test_run`], for the program that does nothing:
    /// the fixed cost of a test run, which benchmarks subtract.
    pub fn test_run_empty(&self, frame: &[u8], repeat: u32) -> Result<u64, CaptureError> {
        self.test_run_program(names::PROG_EMPTY, frame, repeat)
    }

    fn test_run_program(
        &self,
        name: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<u64, CaptureError> {
        self.test_run_as::<SchedClassifier>(name, frame, repeat)
    }

    fn test_run_xdp(&self, frame: &[u8], repeat: u32) -> Result<u64, CaptureError> {
        self.test_run_as::<Xdp>(names::PROG_XDP, frame, repeat)
    }

    /// BPF_PROG_TEST_RUN of program `name`, of aya type `P`.
    fn test_run_as<P>(
        &self,
        name: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<u64, CaptureError>
    where
        P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = aya::programs::TestRunResult>,
        for<'a> &'a P: TryFrom<&'a aya::programs::Program, Error = aya::programs::ProgramError>,
    {
        let program: &P = self
            .ebpf
            .program(name)
            .ok_or(CaptureError::Missing { name })?
            .try_into()
            .map_err(program_error("finding", name))?;
        let mut out = vec![0u8; frame.len() + 256];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat,
                ..TestRunOptions::default()
            })
            .map_err(program_error("test-running", name))?;
        Ok(result.duration.as_nanos() as u64)
    }
}
