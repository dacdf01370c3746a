//! Compiling clients' tcpdump expressions, each in a sandboxed helper
//! process (`helper.rs`) with a deadline, a few at a time per uid.
//!
//! libpcap's compiler is C code parsing what any local user sends, and its
//! time grows with the cube of an expression's length (an expression of
//! 800 ports takes minutes). So the daemon never runs it itself on a
//! client's behalf: a helper does, confined, and is killed at the deadline
//! or when the request is dropped (the client left, the daemon stops). The
//! helper's answer is validated like any client's bytecode. The policy's
//! own filters, which the box owner wrote, are compiled in the daemon.
//!
//! | file | concern |
//! |---|---|
//! | `protocol.rs` | what the daemon and a helper say to each other |
//! | `helper.rs` | the helper process: confinement, then libpcap |

mod helper;
mod protocol;

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use pktd_filter::{FilterError, ValidProgram};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use self::protocol::{Answer, Request};
pub use self::{
    helper::{HELPER_ARG, HELPER_GID, HELPER_UID, run as run_helper},
    protocol::MAX_EXPRESSION_LEN,
};
use crate::sync::lock;

/// How long a helper may take, by default.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);
/// Compiles one uid may have in flight (root: no limit).
pub const PER_UID: u32 = 2;
/// Largest answer read from a helper: a program of 4096 instructions in
/// `-ddd` form is under 100 KB.
const MAX_ANSWER: u64 = 256 * 1024;

/// Why an expression was not compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Longer than [`MAX_EXPRESSION_LEN`].
    #[error("the filter expression is {len} bytes long; at most {max} are accepted")]
    TooLong {
        /// Its length.
        len: usize,
        /// The most accepted.
        max: usize,
    },
    /// The uid has as many compiles in flight as it may.
    #[error("uid {uid} has {count} filters compiling already")]
    Busy {
        /// The client's uid.
        uid: u32,
        /// Its compiles in flight.
        count: u32,
    },
    /// The daemon has as many compiles in flight as it runs at once.
    #[error("the daemon is compiling {count} filters already; try again")]
    Saturated {
        /// Compiles in flight.
        count: u32,
    },
    /// libpcap refused the expression, or its program broke a kernel rule.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The helper did not answer in time and was killed.
    #[error(
        "compiling the filter took longer than {} s and was stopped; write a simpler filter",
        deadline.as_secs_f64()
    )]
    Deadline {
        /// The deadline.
        deadline: Duration,
    },
    /// The helper could not be run, or answered nonsense.
    #[error("the compile helper {helper} failed: {reason}")]
    Helper {
        /// The helper's path.
        helper: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The daemon's compiler.
pub struct Compiler {
    helper: PathBuf,
    deadline: Duration,
    /// Most compiles in flight for everyone but root.
    global: u32,
    in_flight: Mutex<InFlight>,
}

#[derive(Default)]
struct InFlight {
    total: u32,
    per_uid: HashMap<u32, u32>,
}

impl Compiler {
    /// Compiles with the helper binary `helper` (run as `helper
    /// compile-helper`), killing it after `deadline`.
    pub fn new(helper: PathBuf, deadline: Duration) -> Arc<Self> {
        let cpus = std::thread::available_parallelism().map_or(2, |cpus| cpus.get() as u32);
        Arc::new(Self {
            helper,
            deadline,
            global: (2 * cpus).max(4),
            in_flight: Mutex::default(),
        })
    }

    /// Compiles `expression` for a client of `uid` as libpcap would for
    /// Ethernet, `snaplen` being what an accepting filter returns.
    pub async fn compile(
        &self,
        uid: u32,
        expression: &str,
        optimize: bool,
        snaplen: u32,
    ) -> Result<ValidProgram, CompileError> {
        if expression.len() > MAX_EXPRESSION_LEN {
            return Err(CompileError::TooLong {
                len: expression.len(),
                max: MAX_EXPRESSION_LEN,
            });
        }
        let _ticket = self.enter(uid)?;
        let request = Request {
            expression: expression.to_owned(),
            optimize,
            snaplen,
        };
        let answer = tokio::time::timeout(self.deadline, self.ask(&request))
            .await
            .map_err(|_| CompileError::Deadline {
                deadline: self.deadline,
            })??;
        match answer {
            Answer::Program(ddd) => Ok(pktd_filter::validate(&pktd_filter::parse_ddd(&ddd)?)?),
            Answer::Error(message) => Err(FilterError::Compile {
                expression: request.expression,
                message,
            }
            .into()),
        }
    }

    /// Runs a helper on `request`. Dropping the future kills the helper.
    async fn ask(&self, request: &Request) -> Result<Answer, CompileError> {
        let failed = |reason: String| CompileError::Helper {
            helper: self.helper.clone(),
            reason,
        };
        let mut child = tokio::process::Command::new(&self.helper)
            .arg(HELPER_ARG)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| failed(format!("starting it: {err}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        stdin
            .write_all(&request.encode())
            .await
            .map_err(|err| failed(format!("writing to it: {err}")))?;
        drop(stdin);
        let mut answer = Vec::new();
        (&mut stdout)
            .take(MAX_ANSWER)
            .read_to_end(&mut answer)
            .await
            .map_err(|err| failed(format!("reading from it: {err}")))?;
        let status = child
            .wait()
            .await
            .map_err(|err| failed(format!("waiting for it: {err}")))?;
        if !status.success() {
            return Err(failed(format!("it ended with {status}")));
        }
        Answer::decode(&answer).ok_or_else(|| failed("it answered nonsense".to_owned()))
    }

    /// Counts a compile of `uid`; the ticket uncounts it when dropped.
    fn enter(&self, uid: u32) -> Result<Ticket<'_>, CompileError> {
        let mut in_flight = lock(&self.in_flight);
        if uid != 0 {
            let count = in_flight.per_uid.get(&uid).copied().unwrap_or(0);
            if count >= PER_UID {
                return Err(CompileError::Busy { uid, count });
            }
            if in_flight.total >= self.global {
                return Err(CompileError::Saturated {
                    count: in_flight.total,
                });
            }
        }
        in_flight.total += 1;
        *in_flight.per_uid.entry(uid).or_default() += 1;
        Ok(Ticket {
            compiler: self,
            uid,
        })
    }
}

/// A compile in flight, counted until dropped.
struct Ticket<'a> {
    compiler: &'a Compiler,
    uid: u32,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.compiler.in_flight);
        in_flight.total = in_flight.total.saturating_sub(1);
        if let Some(count) = in_flight.per_uid.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                in_flight.per_uid.remove(&self.uid);
            }
        }
    }
}
