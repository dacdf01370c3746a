//! Native filters: classic BPF translated into eBPF (by `pktd-translate`)
//! and loaded as programs the kernel program tail-calls.

use std::os::fd::OwnedFd;

use pktd_translate::{Filter, Hook, MapFds, ProgramSpec, Sharing, TranslateError, translate};

use crate::sys;

/// How an attachment runs its sessions' filters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// Every filter interpreted in the kernel program.
    Interpreter,
    /// One native program per session, chained by tail calls (at most
    /// [`MAX_CHAIN`] sessions; the others are interpreted).
    PerClient,
    /// Native decision programs shared by all sessions, merging their common
    /// tests: one program, or a short chain when the filters are too many
    /// or too large for one.
    #[default]
    Shared,
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "interpreter" => Ok(Self::Interpreter),
            "per-client" => Ok(Self::PerClient),
            "shared" => Ok(Self::Shared),
            other => Err(format!(
                "unknown engine {other:?} (interpreter, per-client or shared)"
            )),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Interpreter => "interpreter",
            Self::PerClient => "per-client",
            Self::Shared => "shared",
        })
    }
}

/// Which hook the daemon attaches at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HookChoice {
    /// XDP while every session on the interface wants received packets
    /// only and its driver runs XDP on its own receive buffers (not veth,
    /// whose XDP converts every skb and measured slower than TC); TC
    /// otherwise (moving from XDP to TC when a session wants sent packets
    /// too).
    #[default]
    Auto,
    /// Always TC.
    Tc,
    /// Always XDP: sessions that want sent packets are refused.
    Xdp,
}

impl std::str::FromStr for HookChoice {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "auto" => Ok(Self::Auto),
            "tc" => Ok(Self::Tc),
            "xdp" => Ok(Self::Xdp),
            other => Err(format!("unknown hook {other:?} (auto, tc or xdp)")),
        }
    }
}

impl std::fmt::Display for HookChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Tc => "tc",
            Self::Xdp => "xdp",
        })
    }
}

/// Most programs in a chain: the kernel allows 33 tail calls per packet;
/// one goes from the attachment's entry program to the shared classifier,
/// one enters the chain and one leaves it.
pub const MAX_CHAIN: usize = 31;

/// What a session's filter runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotEngine {
    /// Native eBPF code.
    Native,
    /// The kernel program's interpreter.
    Interpreted,
}

impl std::fmt::Display for SlotEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Interpreted => "interpreter",
        })
    }
}

/// Why native code could not be had.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The translator refused.
    #[error(transparent)]
    Translate(#[from] TranslateError),
    /// The kernel refused the generated program.
    #[error("the kernel refused the generated program ({error}); verifier: {log_tail}")]
    Refused {
        /// The load's error.
        error: std::io::Error,
        /// The end of the verifier's log.
        log_tail: String,
    },
}

/// A loaded native program.
pub struct NativeProgram {
    pub fd: OwnedFd,
    /// eBPF instructions.
    pub insns: usize,
    /// Decision trees the filters were merged into.
    pub trees: usize,
    /// Filters translated on their own.
    pub standalone: usize,
}

/// Most instructions the daemon puts in one native program: larger sets of
/// filters are split into a chain of programs (quicker to verify, and
/// mostly within eBPF's 16-bit jump offsets, so few need `gotol`).
pub const MAX_PROGRAM_INSNS: usize = 8192;

/// The number of instructions `filters` translate into.
pub fn size(filters: &[Filter<'_>], sharing: Sharing) -> Result<usize, NativeError> {
    let maps = MapFds {
        verdicts: -1,
        jump: -1,
    };
    let request = ProgramSpec {
        filters,
        hook: Hook::Tc,
        maps,
        sharing,
        next: 0,
    };
    Ok(translate(&request)?.insns.len())
}

/// Translates and loads `filters` as one program ending in a tail call to
/// program-array entry `next`.
pub fn load(
    filters: &[Filter<'_>],
    hook: Hook,
    maps: MapFds,
    sharing: Sharing,
    next: u32,
) -> Result<NativeProgram, NativeError> {
    let translation = translate(&ProgramSpec {
        filters,
        hook,
        maps,
        sharing,
        next,
    })?;
    let bytes: Vec<[u8; 8]> = translation
        .insns
        .iter()
        .map(|insn| insn.to_bytes())
        .collect();
    let (prog_type, expected_attach_type) = program_type(hook);
    let fd = sys::load_program(prog_type, expected_attach_type, "pktd_native", &bytes).map_err(
        |refused| {
            let lines: Vec<&str> = refused.log.lines().collect();
            NativeError::Refused {
                error: refused.error,
                log_tail: lines[lines.len().saturating_sub(3)..].join(" | "),
            }
        },
    )?;
    Ok(NativeProgram {
        fd,
        insns: bytes.len(),
        trees: translation.trees,
        standalone: translation.standalone,
    })
}

/// The program type and expected attach type of the daemon's own programs
/// at `hook` (native filters, entry programs): BPF_PROG_TYPE_SCHED_CLS, or
/// BPF_PROG_TYPE_XDP with BPF_XDP, as aya loads the programs they
/// tail-call or are tail-called by (a program array takes one kind).
pub(super) fn program_type(hook: Hook) -> (u32, u32) {
    match hook {
        Hook::Tc => (3, 0),
        Hook::Xdp => (6, 37),
    }
}
