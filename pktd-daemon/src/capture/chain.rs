//! Native code for an attachment's filters: which slots are translated
//! together (per the engine), loading them as a chain of programs joined by
//! tail calls, and installing the chain.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use pktd_common::{MAX_CLIENTS, jump};
use pktd_translate::{Filter, Hook, MapFds, Sharing};

use super::{
    attachment::Attachment,
    error::CaptureError,
    native::{self, Engine, MAX_CHAIN, NativeError},
};
use crate::sys;

/// Entries of the attachment's block in each half that chains alternate
/// between: the rest of a chain, after its first program.
const CHAIN_HALF: u32 = (jump::BLOCK - jump::CHAIN) / 2;
const _: () = assert!(MAX_CHAIN as u32 - 1 <= CHAIN_HALF);

impl Attachment {
    /// Regenerates and installs the native code for the current filters
    /// (per the engine), then tells the kernel which slots are in use and
    /// which of them are interpreted. Filters the kernel refuses in native
    /// form are interpreted from then on.
    ///
    /// The native code is a chain of programs joined by tail calls: one per
    /// client (per-client engine), or as few as fit [`native::MAX_PROGRAM_INSNS`]
    /// each (shared engine); at most [`MAX_CHAIN`].
    ///
    /// A chain is swapped whole: its programs after the first go into the
    /// half of the attachment's block the running chain does not use, and
    /// the first replaces `DECIDE` last, so a packet runs the old chain or
    /// the new one, never parts of both.
    pub(super) fn rebuild_native(&mut self) -> Result<(), CaptureError> {
        let half = 1 - self.chain_half;
        let block = self.maps.block();
        let rest = block + jump::CHAIN + half * CHAIN_HALF;
        let (programs, native) = loop {
            let groups = self.native_groups();
            match self.load_chain(&groups, rest) {
                Ok(loaded) => break loaded,
                // A program was refused and its culprits marked: again.
                Err(()) => continue,
            }
        };
        // While the chains swap, every slot native in only one of them is
        // interpreted (its filter installed first, see `publish_globals`),
        // so that no packet finds a slot in neither; an interpreted slot
        // takes no native verdict, so none is delivered twice. Slots not
        // yet published are not active: their code may just go live.
        let before = self.native;
        self.native = (before & native) | (native & !self.published);
        self.publish_globals()?;
        let install = |entry, program: &OwnedFd| {
            sys::set_fd_entry(self.jump_map(), entry, program.as_fd()).map_err(|source| {
                CaptureError::Io {
                    operation: "installing native filters",
                    source,
                }
            })
        };
        for (index, program) in programs.iter().enumerate().skip(1) {
            install(rest + index as u32 - 1, program)?;
        }
        if let Some(first) = programs.first() {
            install(block + jump::DECIDE, first)?;
        }
        self.chain_half = half;
        if programs.is_empty() {
            match sys::delete_map_entry(self.jump_map(), block + jump::DECIDE) {
                Err(err) if err.raw_os_error() != Some(libc::ENOENT) => {
                    return Err(CaptureError::Io {
                        operation: "removing native filters",
                        source: err,
                    });
                }
                _ => {}
            }
        }
        self.native = native;
        self.publish_globals()?;
        // The chain no longer holds the code of the slots given back: their
        // filters and rings may go.
        self.releasing |= self.stale;
        self.stale = 0;
        Ok(())
    }

    /// The program array of the hook's programs.
    fn jump_map(&self) -> BorrowedFd<'_> {
        match self.hook {
            Hook::Tc => self.maps.jump_fd.as_fd(),
            Hook::Xdp => self.maps.xdp_jump_fd.as_fd(),
        }
    }

    /// The slots to translate, grouped one group per program.
    fn native_groups(&self) -> Vec<Vec<u32>> {
        let candidates = (0..MAX_CLIENTS)
            .filter(|slot| matches!(&self.slots[*slot as usize], Some(state) if !state.refused));
        let mut groups: Vec<Vec<u32>> = Vec::new();
        match self.engine {
            Engine::Interpreter => {}
            Engine::PerClient => groups.extend(candidates.map(|slot| vec![slot])),
            Engine::Shared => {
                for slot in candidates {
                    if let Some(group) = groups.last_mut() {
                        group.push(slot);
                        let fits = native::size(&self.filters_of(group), Sharing::Shared)
                            .is_ok_and(|insns| insns <= native::MAX_PROGRAM_INSNS);
                        if fits {
                            continue;
                        }
                        group.pop();
                    }
                    groups.push(vec![slot]);
                }
            }
        }
        groups.truncate(MAX_CHAIN);
        groups
    }

    fn filters_of(&self, slots: &[u32]) -> Vec<Filter<'_>> {
        slots
            .iter()
            .filter_map(|slot| {
                let state = self.slots[*slot as usize].as_ref()?;
                Some(Filter {
                    slot: *slot,
                    program: &state.filter,
                })
            })
            .collect()
    }

    /// Loads one program per group, each tail-calling the next and the
    /// last the delivery program. `Err` when the kernel refused one: the
    /// filters it refuses alone are then marked refused (or, if none is,
    /// the whole group).
    fn load_chain(&mut self, groups: &[Vec<u32>], rest: u32) -> Result<(Vec<OwnedFd>, u64), ()> {
        let sharing = match self.engine {
            Engine::Shared => Sharing::Shared,
            _ => Sharing::None,
        };
        let mut programs = Vec::new();
        let mut native = 0u64;
        for (index, group) in groups.iter().enumerate() {
            let next = if index + 1 == groups.len() {
                jump::DELIVER
            } else {
                rest + index as u32
            };
            match self.load_native(group, sharing, next) {
                Ok(program) => {
                    programs.push(program);
                    native |= group.iter().fold(0, |mask, slot| mask | 1 << slot);
                }
                Err(err) => {
                    tracing::warn!(slots = ?group, %err, "native code refused");
                    let mut culprits: Vec<u32> = group
                        .iter()
                        .copied()
                        .filter(|slot| {
                            self.load_native(&[*slot], Sharing::None, jump::DELIVER)
                                .is_err()
                        })
                        .collect();
                    if culprits.is_empty() {
                        culprits.clone_from(group);
                    }
                    for slot in culprits {
                        tracing::warn!(slot, "filter interpreted: no native code for it");
                        if let Some(state) = &mut self.slots[slot as usize] {
                            state.refused = true;
                        }
                    }
                    return Err(());
                }
            }
        }
        Ok((programs, native))
    }

    fn load_native(
        &self,
        slots: &[u32],
        sharing: Sharing,
        next: u32,
    ) -> Result<OwnedFd, NativeError> {
        let maps = MapFds {
            verdicts: self.maps.verdicts_fd.as_raw_fd(),
            jump: self.jump_map().as_raw_fd(),
        };
        let filters = self.filters_of(slots);
        let program = native::load(&filters, self.hook, maps, sharing, next)?;
        tracing::debug!(
            filters = filters.len(),
            insns = program.insns,
            trees = program.trees,
            standalone = program.standalone,
            ?sharing,
            "native filters loaded"
        );
        Ok(program.fd)
    }
}
