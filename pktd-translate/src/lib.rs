//! Translation of validated classic-BPF filters into native eBPF.
//!
//! pktd's kernel program can interpret each client's classic-BPF filter, one
//! `bpf_loop` iteration per instruction: correct, but it costs a hundred
//! nanoseconds or more per filter per packet. This crate turns filters into
//! eBPF instructions that the daemon loads as a TC (or XDP) program of its
//! own, reached from the kernel program by a tail call (`jump::DECIDE`):
//!
//! - packet loads read the packet's linear data directly after a bounds
//!   check, and fall back to `bpf_skb_load_bytes`/`bpf_xdp_load_bytes` past
//!   it; a load outside the packet rejects, as in the kernel;
//! - a division or modulo by X = 0 rejects, as in the kernel;
//! - scratch memory M[] lives on the stack;
//! - each accepting filter's return value is written into the CPU's
//!   [`pktd_common::Verdicts`] with the slot's bit in `matched`; the program
//!   then tail-calls the delivery program (or the next program of a chain).
//!
//! With [`Sharing::Shared`], filters are merged into one decision tree
//! first ([`tree`]): instructions that several filters execute in the same
//! state are executed once, and filters that differ only in the constant of
//! their last comparison (`port 1`, `port 2`, …) become one binary search.
//! Sixty-four port filters then cost a few comparisons more than one.
//!
//! The output is plain data (eBPF instructions with the map fds in place):
//! loading it is the daemon's business.

mod codegen;
mod entry;
mod ir;
pub mod tree;

pub use codegen::Insn;
pub use entry::{Entry, entry};
use pktd_filter::ValidProgram;

/// The hook the generated program runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// TC classifier (`__sk_buff` context).
    Tc,
    /// XDP (`xdp_md` context).
    Xdp,
}

/// How filters are combined into one program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Each filter's code on its own, one after the other.
    None,
    /// Filters merged into decision trees that share their common tests.
    Shared,
}

/// The maps the generated code refers to, as fds of the calling process.
#[derive(Clone, Copy, Debug)]
pub struct MapFds {
    /// `PKTD_VERDICTS`.
    pub verdicts: i32,
    /// `PKTD_JUMP` or `PKTD_XDP_JUMP` (matching the hook).
    pub jump: i32,
}

/// One client's filter.
#[derive(Clone, Copy, Debug)]
pub struct Filter<'a> {
    /// The client's slot (0..MAX_CLIENTS).
    pub slot: u32,
    /// Its validated program.
    pub program: &'a ValidProgram,
}

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct ProgramSpec<'a> {
    /// The filters, at most one per slot.
    pub filters: &'a [Filter<'a>],
    /// The hook.
    pub hook: Hook,
    /// The maps.
    pub maps: MapFds,
    /// Merge the filters or not.
    pub sharing: Sharing,
    /// The program-array entry tail-called at the end.
    pub next: u32,
}

/// A generated program.
#[derive(Clone, Debug)]
pub struct Translation {
    /// The eBPF instructions.
    pub insns: Vec<Insn>,
    /// Decision trees the filters were merged into (each a group of filters
    /// sharing code).
    pub trees: usize,
    /// Filters translated on their own (not merged: they use scratch
    /// memory, expand into too large a tree, or sharing was off).
    pub standalone: usize,
}

/// Why a set of filters could not be translated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslateError {
    /// A slot number outside 0..MAX_CLIENTS, or used twice.
    #[error("invalid or repeated slot {slot}")]
    BadSlot {
        /// The slot.
        slot: u32,
    },
    /// The code is longer than the kernel loads (a million instructions).
    #[error("generated program too large ({insns} instructions)")]
    TooLarge {
        /// Instructions generated.
        insns: usize,
    },
}

/// Translates `request.filters` into one eBPF program.
pub fn translate(request: &ProgramSpec<'_>) -> Result<Translation, TranslateError> {
    let mut seen = 0u64;
    for filter in request.filters {
        let bit = 1u64
            .checked_shl(filter.slot)
            .filter(|_| filter.slot < pktd_common::MAX_CLIENTS)
            .ok_or(TranslateError::BadSlot { slot: filter.slot })?;
        if seen & bit != 0 {
            return Err(TranslateError::BadSlot { slot: filter.slot });
        }
        seen |= bit;
    }
    let mut program = ir::Ir::new();
    let mut trees = 0;
    let mut standalone = 0;
    let (forest, alone) = match request.sharing {
        Sharing::Shared => tree::Forest::plant(request.filters),
        Sharing::None => (tree::Forest::default(), request.filters.to_vec()),
    };
    for root in forest.trees() {
        program.lower_tree(root);
        trees += 1;
    }
    for filter in &alone {
        program.lower_program(filter.slot, filter.program.insns());
        standalone += 1;
    }
    let insns = codegen::generate(&program, request.hook, request.maps, request.next)?;
    Ok(Translation {
        insns,
        trees,
        standalone,
    })
}
