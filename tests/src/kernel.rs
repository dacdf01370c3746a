//! Driving the kernel program without an interface: clients in a detached
//! [`Attachment`], packets through BPF_PROG_TEST_RUN.

use pktd_daemon::capture::{Attachment, CaptureError, ClientSpec, Engine, Hook, Record, Ring};
use pktd_filter::ValidProgram;

/// A loaded, unattached kernel program with one client per filter.
pub struct Bench {
    /// The loaded program.
    pub attachment: Attachment,
    /// One client per filter, in order.
    pub clients: Vec<Ring>,
}

impl Bench {
    /// Loads the program and adds a client (default spec) per filter.
    pub fn new(filters: &[ValidProgram]) -> Self {
        Self::with_spec(filters, &ClientSpec::default())
    }

    /// Loads the program and adds a client with `spec` per filter.
    pub fn with_spec(filters: &[ValidProgram], spec: &ClientSpec) -> Self {
        Self::with_engine(filters, spec, Engine::default())
    }

    /// Loads the program with `engine` and adds a client with `spec` per
    /// filter.
    pub fn with_engine(filters: &[ValidProgram], spec: &ClientSpec, engine: Engine) -> Self {
        Self::with_hook(filters, spec, engine, Hook::Tc)
    }

    /// Loads the programs of `hook` with `engine` and adds a client with
    /// `spec` per filter.
    pub fn with_hook(
        filters: &[ValidProgram],
        spec: &ClientSpec,
        engine: Engine,
        hook: Hook,
    ) -> Self {
        let mut attachment =
            Attachment::detached(engine, hook).expect("loading the kernel program");
        let clients = filters
            .iter()
            .map(|filter| {
                attachment
                    .add_client(spec, filter)
                    .expect("adding a client")
            })
            .collect();
        Self {
            attachment,
            clients,
        }
    }

    /// Runs one frame through the program (as received) and returns, per
    /// client, the record it got, if any. Panics if the kernel refuses the
    /// run (see [`Bench::try_run`]).
    pub fn run(&mut self, frame: &[u8]) -> Vec<Option<Record>> {
        self.try_run(frame).unwrap_or_else(|err| {
            panic!("BPF_PROG_TEST_RUN on a {}-byte frame: {err}", frame.len())
        })
    }

    /// Like [`Bench::run`], but returns the kernel's refusal: BPF_PROG_TEST_RUN
    /// rejects (EINVAL) some frames whose network header is cut short, which
    /// a real interface delivers to TC all the same.
    pub fn try_run(&mut self, frame: &[u8]) -> Result<Vec<Option<Record>>, CaptureError> {
        self.attachment.test_run(pktd_common::DIR_IN, frame, 1)?;
        Ok(self
            .clients
            .iter_mut()
            .map(|client| {
                let record = client.next_record();
                assert!(
                    client.next_record().is_none(),
                    "one packet gave a client two records"
                );
                record
            })
            .collect())
    }
}
