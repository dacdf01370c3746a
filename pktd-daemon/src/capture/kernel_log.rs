//! The kernel program's own log (aya-log): rare events, such as a filter
//! running out of its interpreter budget, forwarded to the daemon's log.
//! Never per packet: the kernel side logs an event once per slot and CPU.

use aya::Ebpf;
use aya_log::EbpfLogger;
use tokio::{runtime::Handle, task::AbortHandle};

use crate::sys;

type Logger = EbpfLogger<&'static dyn log::Log>;

/// One loaded program's log: read on [`KernelLog::flush`] until
/// [`KernelLog::start`] hands it to a task, which ends with it.
#[derive(Default)]
pub(super) struct KernelLog {
    waiting: Option<Logger>,
    task: Option<AbortHandle>,
}

impl KernelLog {
    /// Takes the log out of `ebpf`.
    pub fn take(ebpf: &mut Ebpf) -> Self {
        match EbpfLogger::init(ebpf) {
            Ok(logger) => Self {
                waiting: Some(logger),
                task: None,
            },
            Err(err) => {
                tracing::warn!(%err, "the kernel program's log is not readable");
                Self::default()
            }
        }
    }

    /// Forwards records as they arrive, from a task on the current tokio
    /// runtime; without a runtime (tests, start-up checks) they wait for
    /// [`KernelLog::flush`].
    pub fn start(&mut self) {
        let Ok(runtime) = Handle::try_current() else {
            return;
        };
        let Some(logger) = self.waiting.take() else {
            return;
        };
        // Registering the fd needs the runtime's context, which a blocking
        // thread has only through the handle.
        let _context = runtime.enter();
        let mut logger = match sys::register_log(logger) {
            Ok(logger) => logger,
            Err(err) => {
                tracing::warn!(%err, "the kernel program's log cannot be watched");
                return;
            }
        };
        let task = runtime.spawn(async move {
            while let Ok(mut ready) = logger.readable_mut().await {
                ready.get_inner_mut().flush();
                ready.clear_ready();
            }
        });
        self.task = Some(task.abort_handle());
    }

    /// Forwards the records waiting, if no task does.
    pub fn flush(&mut self) {
        if let Some(logger) = &mut self.waiting {
            logger.flush();
        }
    }
}

impl Drop for KernelLog {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
