//! Filters of anonymized principals: written against the addresses the
//! client sees, run on the real packets.
//!
//! A client whose packets are anonymized (`pktd_anon`) writes `host A` or
//! `net A/n` with the anonymized addresses it sees. [`map_addresses`]
//! maps each such constant back to the real address or prefix with the
//! principal's key (Crypto-PAn is prefix-preserving, so `net A/n` is one
//! real prefix), and refuses every other way of reading what the client
//! does not see as it is: a part of an address, an address compared any
//! other way than equal, a checksum (it covers the real addresses), MAC
//! addresses when they are hidden, anything the anonymizer zeroes (a
//! frame it does not parse, a tunnelled packet, IPv4 options, ICMP
//! bodies that may quote addresses).
//!
//! It is an abstract interpretation of the program's paths (all jumps go
//! forward): what each path has tested (the EtherType, the IP protocol,
//! the fragment offset, ICMP types, earlier words of an IPv6 address)
//! decides what each load may be. Where paths join, only what they agree
//! on is kept, so the analysis errs on the side of refusing.
//!
//! The mapped program gets a guard in front: frames whose IPv4 or IPv6
//! version does not match their EtherType, IPv4 headers shorter than 20
//! bytes, and ARP that is not Ethernet/IPv4 never reach the client's
//! filter, so that the analysis may rely on the layouts the anonymizer
//! parses (an IPv4 header length of at least 20 keeps `x + k` loads clear
//! of the addresses).

mod layout;

use crate::{
    CbpfInsn, FilterError, ValidProgram,
    asm::{Asm, To},
    opcodes::*,
    validate,
};

use self::layout::{Reads, classify, known};

/// The principal's key, as the filter mapping needs it: the one real
/// prefix of each anonymized prefix.
pub trait AddressMap {
    /// The real IPv4 prefix of `len` bits whose addresses map into the
    /// anonymized prefix `anonymized`/`len` (bits past `len` zero).
    fn real_prefix_v4(&self, anonymized: u32, len: u8) -> u32;
    /// The same for IPv6.
    fn real_prefix_v6(&self, anonymized: u128, len: u8) -> u128;
}

/// The key's own mapping: Crypto-PAn is prefix-preserving, so each
/// anonymized prefix has one real prefix.
impl AddressMap for pktd_anon::CryptoPan {
    fn real_prefix_v4(&self, anonymized: u32, len: u8) -> u32 {
        pktd_anon::CryptoPan::real_prefix_v4(self, anonymized, len)
    }

    fn real_prefix_v6(&self, anonymized: u128, len: u8) -> u128 {
        pktd_anon::CryptoPan::real_prefix_v6(self, anonymized, len)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// A 4-byte word of an address in the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Word {
    family: Family,
    /// Where the address starts (absolute offset).
    start: u32,
    /// Which word of it (0 for IPv4, 0..4 for IPv6).
    index: u32,
}

/// The start of an IPv4 address that is at different places on the paths
/// that join (no fact is learnt about it).
const ANYWHERE: u32 = u32::MAX;

/// Where a field is: at an absolute offset, or relative to the transport
/// header of the IPv4 packet at `l3` (reached through `X = 4 * IHL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Abs(u32),
    Transport { l3: u32, at: u32 },
}

/// What a path has established: `(field & mask)` is one of `values`
/// (more than one where paths that tested different values join, as
/// after `jeq #0x8100 … jeq #0x88a8` to one block).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fact {
    place: Place,
    size: u32,
    mask: u32,
    values: Vec<u32>,
}

/// Values a fact keeps before it is dropped as telling too little.
const MAX_VALUES: usize = 8;

/// What a register or scratch cell holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Unknown,
    Const(u32),
    /// A plain packet field, masked.
    Field {
        place: Place,
        size: u32,
        mask: u32,
    },
    /// `4 * (P[offset] & 0xf)`.
    Msh(u32),
    /// A word of an address, masked by a prefix mask: it may only be
    /// compared equal with a constant, which is mapped.
    Address {
        word: Word,
        mask: u32,
    },
    /// Derived from an address on some path: unusable.
    Tainted,
}

impl Val {
    fn merge(self, other: Val) -> Val {
        match (self, other) {
            (a, b) if a == b => a,
            // An IPv4 address at different places on different paths (the
            // IP source and ARP's sender, compared with one constant): its
            // mapping does not depend on where it is.
            (
                Val::Address { word: a, mask },
                Val::Address {
                    word: b,
                    mask: other_mask,
                },
            ) if a.family == Family::V4 && b.family == Family::V4 && mask == other_mask => {
                Val::Address {
                    word: Word {
                        start: ANYWHERE,
                        ..a
                    },
                    mask,
                }
            }
            (Val::Address { .. } | Val::Tainted, _) | (_, Val::Address { .. } | Val::Tainted) => {
                Val::Tainted
            }
            _ => Val::Unknown,
        }
    }

    fn is_address(self) -> bool {
        matches!(self, Val::Address { .. } | Val::Tainted)
    }
}

/// Facts kept per path: more only makes the analysis more precise, and
/// the bound keeps it linear in the program's length.
const MAX_FACTS: usize = 32;

#[derive(Clone, Debug)]
struct State {
    facts: Vec<Fact>,
    a: Val,
    x: Val,
    mem: [Val; BPF_MEMWORDS as usize],
}

impl State {
    fn merge(&mut self, other: &State) {
        self.facts.retain_mut(|fact| {
            let Some(theirs) = other.facts.iter().find(|theirs| {
                (theirs.place, theirs.size, theirs.mask) == (fact.place, fact.size, fact.mask)
            }) else {
                return false;
            };
            for value in &theirs.values {
                if !fact.values.contains(value) {
                    fact.values.push(*value);
                }
            }
            fact.values.len() <= MAX_VALUES
        });
        self.a = self.a.merge(other.a);
        self.x = self.x.merge(other.x);
        for (mine, theirs) in self.mem.iter_mut().zip(other.mem) {
            *mine = mine.merge(theirs);
        }
    }

    /// `(field & mask) == value` on this path.
    fn learn(&mut self, place: Place, size: u32, mask: u32, value: u32) {
        let same = |fact: &Fact| (fact.place, fact.size, fact.mask) == (place, size, mask);
        if let Some(fact) = self.facts.iter_mut().find(|fact| same(fact)) {
            // A path that already knew the field: the test narrows it.
            fact.values = vec![value];
        } else if self.facts.len() < MAX_FACTS {
            self.facts.push(Fact {
                place,
                size,
                mask,
                values: vec![value],
            });
        }
    }
}

/// `program` with its address constants mapped back to the real ones,
/// behind the guard (see the module); a refusal naming the instruction
/// and what it reads otherwise. `macs_visible`: the principal sees MAC
/// addresses as they are.
pub fn map_addresses(
    program: &ValidProgram,
    map: &dyn AddressMap,
    macs_visible: bool,
) -> Result<ValidProgram, FilterError> {
    let insns = program.insns();
    let mut analysis = Analysis {
        insns,
        map,
        macs_visible,
        states: vec![None; insns.len()],
        constants: vec![None; insns.len()],
    };
    analysis.states[0] = Some(State {
        facts: Vec::new(),
        a: Val::Unknown,
        x: Val::Unknown,
        mem: [Val::Unknown; BPF_MEMWORDS as usize],
    });
    for pc in 0..insns.len() {
        if let Some(state) = analysis.states[pc].take() {
            analysis
                .step(pc, state)
                .map_err(|reason| FilterError::Anonymized { index: pc, reason })?;
        }
    }
    let mut mapped = guard();
    mapped.extend(
        insns
            .iter()
            .zip(&analysis.constants)
            .map(|(insn, constant)| {
                let mut insn = *insn;
                if let Some(k) = constant {
                    insn.k = *k;
                }
                insn
            }),
    );
    validate(&mapped)
}

struct Analysis<'a> {
    insns: &'a [CbpfInsn],
    map: &'a dyn AddressMap,
    macs_visible: bool,
    /// The state on entry of each instruction not yet visited.
    states: Vec<Option<State>>,
    /// The mapped constant of each address comparison.
    constants: Vec<Option<u32>>,
}

impl Analysis<'_> {
    fn flow(&mut self, to: usize, state: State) {
        match &mut self.states[to] {
            Some(existing) => existing.merge(&state),
            slot => *slot = Some(state),
        }
    }

    fn step(&mut self, pc: usize, mut state: State) -> Result<(), String> {
        let insn = self.insns[pc];
        let next = pc + 1;
        match class(insn.code) {
            BPF_LD => {
                state.a = match mode(insn.code) {
                    BPF_IMM => Val::Const(insn.k),
                    BPF_MEM => state.mem[insn.k as usize],
                    BPF_LEN => Val::Unknown,
                    BPF_ABS => match Ancillary::at(insn.k) {
                        // The packet type tells the hidden MAC addresses
                        // apart: broadcast, multicast, this host's.
                        Some(Ancillary::PacketType) if !self.macs_visible => {
                            return Err("reads the packet type (inbound, outbound), which \
                                        tells the hidden MAC addresses apart"
                                .to_owned());
                        }
                        // For an 802.3 frame the protocol follows from
                        // bytes the anonymizer hides (past the link
                        // header of a frame it does not parse).
                        Some(Ancillary::Protocol) => {
                            return Err("reads the skb protocol, which for 802.3 frames \
                                        follows from hidden bytes"
                                .to_owned());
                        }
                        // The tag and the interface are left as they are.
                        Some(_) => Val::Unknown,
                        None => self.load(&state, insn.k, load_size(insn.code), None)?,
                    },
                    BPF_IND => match state.x {
                        Val::Const(x) => {
                            self.load(&state, x.wrapping_add(insn.k), load_size(insn.code), None)?
                        }
                        Val::Msh(l3) => {
                            self.load(&state, insn.k, load_size(insn.code), Some(l3))?
                        }
                        _ => {
                            return Err(format!(
                                "loads at x + {} with X not an IPv4 header length",
                                insn.k
                            ));
                        }
                    },
                    _ => return Err("an unknown load".to_owned()),
                };
            }
            BPF_LDX => {
                state.x = match mode(insn.code) {
                    BPF_IMM => Val::Const(insn.k),
                    BPF_MEM => state.mem[insn.k as usize],
                    BPF_LEN => Val::Unknown,
                    BPF_MSH => match self.load(&state, insn.k, 1, None)? {
                        Val::Field { .. } => Val::Msh(insn.k),
                        _ => return Err("takes a header length from an address".to_owned()),
                    },
                    _ => return Err("an unknown load".to_owned()),
                };
            }
            BPF_ST => {
                if state.a.is_address() {
                    return Err("keeps an address in scratch memory".to_owned());
                }
                state.mem[insn.k as usize] = state.a;
            }
            BPF_STX => state.mem[insn.k as usize] = state.x,
            BPF_ALU => state.a = alu(insn, state.a)?,
            BPF_JMP => return self.jump(pc, insn, state),
            BPF_RET => {
                if rval(insn.code) == BPF_A && state.a.is_address() {
                    return Err("returns an address as the capture length".to_owned());
                }
                return Ok(());
            }
            BPF_MISC => {
                if miscop(insn.code) == BPF_TAX {
                    if state.a.is_address() {
                        return Err("moves an address into X".to_owned());
                    }
                    state.x = match state.a {
                        Val::Const(k) => Val::Const(k),
                        _ => Val::Unknown,
                    };
                } else {
                    state.a = state.x;
                }
            }
            _ => return Err("an unknown instruction".to_owned()),
        }
        self.flow(next, state);
        Ok(())
    }

    /// What a load of `size` bytes at `offset` (relative to the transport
    /// header of the IPv4 packet at `transport`, if given) puts in A.
    fn load(
        &self,
        state: &State,
        offset: u32,
        size: u32,
        transport: Option<u32>,
    ) -> Result<Val, String> {
        let reads = classify(&state.facts, offset, size, transport, self.macs_visible)?;
        let mask = match size {
            1 => 0xff,
            2 => 0xffff,
            _ => u32::MAX,
        };
        Ok(match reads {
            Reads::Plain => Val::Field {
                place: match transport {
                    Some(l3) => Place::Transport {
                        l3,
                        at: offset - l3,
                    },
                    None => Place::Abs(offset),
                },
                size,
                mask,
            },
            Reads::Address(word) => Val::Address { word, mask },
        })
    }

    fn jump(&mut self, pc: usize, insn: CbpfInsn, state: State) -> Result<(), String> {
        let next = pc + 1;
        if op(insn.code) == BPF_JA {
            self.flow(next + insn.k as usize, state);
            return Ok(());
        }
        let (mut taken, mut not_taken) = (state.clone(), state);
        match taken.a {
            Val::Address { word, mask } => {
                if insn.code != BPF_JMP | BPF_JEQ | BPF_K {
                    return Err(
                        "compares an address other than equal to a constant (host and net do)"
                            .to_owned(),
                    );
                }
                let constant = self.real(&taken, word, mask, insn.k)?;
                match self.constants[pc] {
                    Some(seen) if seen != constant => {
                        return Err(
                            "compares one address word that means different addresses on \
                             different paths"
                                .to_owned(),
                        );
                    }
                    _ => self.constants[pc] = Some(constant),
                }
                if mask == u32::MAX && word.start != ANYWHERE {
                    taken.learn(Place::Abs(word.start + 4 * word.index), 4, mask, insn.k);
                }
            }
            Val::Tainted => return Err("uses a value derived from an address".to_owned()),
            Val::Field { place, size, mask } if src(insn.code) == BPF_K => match op(insn.code) {
                BPF_JEQ => taken.learn(place, size, mask, insn.k & mask),
                BPF_JSET => not_taken.learn(place, size, insn.k & mask, 0),
                _ => {}
            },
            _ => {}
        }
        self.flow(next + usize::from(insn.jt), taken);
        self.flow(next + usize::from(insn.jf), not_taken);
        Ok(())
    }

    /// The real constant for `(word & mask) == k`: the anonymized prefix
    /// is the earlier words of the address this path has tested (IPv6)
    /// and `k` under `mask`.
    fn real(&self, state: &State, word: Word, mask: u32, k: u32) -> Result<u32, String> {
        let bits = mask.leading_ones();
        let outside = k & !mask;
        match word.family {
            Family::V4 => Ok(self.map.real_prefix_v4(k & mask, bits as u8) & mask | outside),
            Family::V6 => {
                let mut anonymized: u128 = 0;
                for index in 0..word.index {
                    let earlier = known(
                        &state.facts,
                        Place::Abs(word.start + 4 * index),
                        4,
                        u32::MAX,
                    )
                    .ok_or_else(|| {
                        format!(
                            "compares word {} of an IPv6 address without testing the words \
                             before it (host and net test them in order)",
                            word.index
                        )
                    })?;
                    anonymized |= u128::from(earlier) << (96 - 32 * index);
                }
                let shift = 96 - 32 * word.index;
                anonymized |= u128::from(k & mask) << shift;
                let len = (32 * word.index + bits) as u8;
                let real = self.map.real_prefix_v6(anonymized, len);
                Ok(((real >> shift) as u32) & mask | outside)
            }
        }
    }
}

/// A after an ALU instruction.
fn alu(insn: CbpfInsn, a: Val) -> Result<Val, String> {
    match a {
        Val::Address { word, mask } => {
            let prefix = insn.k.leading_ones() + insn.k.trailing_zeros() == 32;
            if insn.code == BPF_ALU | BPF_AND | BPF_K && prefix && mask == u32::MAX {
                Ok(Val::Address { word, mask: insn.k })
            } else {
                Err(
                    "computes with an address (only a prefix mask before a comparison, as net \
                     does)"
                        .to_owned(),
                )
            }
        }
        Val::Tainted => Err("uses a value derived from an address".to_owned()),
        Val::Field { place, size, mask } if insn.code == BPF_ALU | BPF_AND | BPF_K => {
            Ok(Val::Field {
                place,
                size,
                mask: mask & insn.k,
            })
        }
        _ => Ok(Val::Unknown),
    }
}

fn load_size(code: u16) -> u32 {
    match size(code) {
        BPF_B => 1,
        BPF_H => 2,
        _ => 4,
    }
}

/// Labels of the guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guard {
    Tag(u32),
    At(u32),
    Ipv4(u32),
    Ipv6(u32),
    Arp(u32),
    ArpLengths(u32),
    Ipv4Length(u32),
    Ipv4Tcp(u32),
    Ipv4First(u32),
    Ipv4Offset(u32),
    Ipv6Tcp(u32),
    Ipv6Offset(u32),
    Reject,
    Pass,
}

/// Rejects what the anonymizer would hide but the analysis reads by its
/// EtherType: an IP header of the wrong version, an IPv4 header shorter
/// than 20 bytes, a TCP header shorter than 20 bytes (as the first header
/// after IPv4, or after IPv6 without extension headers), ARP other than
/// Ethernet/IPv4. Then A and X are 0 again, as a classic program starts.
fn guard() -> Vec<CbpfInsn> {
    use Guard::*;
    let mut asm: Asm<Guard> = Asm::default();
    const TPIDS: [u32; 3] = [0x8100, 0x88a8, 0x9100];
    for (offset, l3) in [(12, 14), (16, 18), (20, 22)] {
        asm.op(BPF_LD | BPF_H | BPF_ABS, offset);
        if l3 != 22 {
            for tpid in TPIDS {
                asm.jump(BPF_JEQ | BPF_K, tpid, To::At(Tag(l3)), To::Next);
            }
        }
        asm.goto(At(l3));
        if l3 != 22 {
            asm.label(Tag(l3));
        }
    }
    for l3 in [14, 18, 22] {
        asm.label(At(l3));
        asm.jump(BPF_JEQ | BPF_K, 0x0800, To::At(Ipv4(l3)), To::Next);
        asm.jump(BPF_JEQ | BPF_K, 0x86dd, To::At(Ipv6(l3)), To::Next);
        asm.jump(BPF_JEQ | BPF_K, 0x0806, To::At(Arp(l3)), To::Next);
        asm.jump(BPF_JEQ | BPF_K, 0x8035, To::At(Arp(l3)), To::At(Pass));
        asm.label(Ipv4(l3));
        asm.op(BPF_LD | BPF_B | BPF_ABS, l3);
        asm.op(BPF_ALU | BPF_AND | BPF_K, 0xf0);
        asm.jump(
            BPF_JEQ | BPF_K,
            0x40,
            To::At(Ipv4Length(l3)),
            To::At(Reject),
        );
        asm.label(Ipv4Length(l3));
        asm.op(BPF_LD | BPF_B | BPF_ABS, l3);
        asm.op(BPF_ALU | BPF_AND | BPF_K, 0x0f);
        asm.jump(BPF_JGE | BPF_K, 5, To::At(Ipv4Tcp(l3)), To::At(Reject));
        asm.label(Ipv4Tcp(l3));
        asm.op(BPF_LD | BPF_B | BPF_ABS, l3 + 9);
        asm.jump(BPF_JEQ | BPF_K, 6, To::At(Ipv4First(l3)), To::At(Pass));
        asm.label(Ipv4First(l3));
        asm.op(BPF_LD | BPF_H | BPF_ABS, l3 + 6);
        asm.jump(
            BPF_JSET | BPF_K,
            0x1fff,
            To::At(Pass),
            To::At(Ipv4Offset(l3)),
        );
        asm.label(Ipv4Offset(l3));
        asm.op(BPF_LDX | BPF_B | BPF_MSH, l3);
        asm.op(BPF_LD | BPF_B | BPF_IND, l3 + 12);
        asm.op(BPF_ALU | BPF_AND | BPF_K, 0xf0);
        asm.jump(BPF_JGE | BPF_K, 0x50, To::At(Pass), To::At(Reject));
        asm.label(Ipv6(l3));
        asm.op(BPF_LD | BPF_B | BPF_ABS, l3);
        asm.op(BPF_ALU | BPF_AND | BPF_K, 0xf0);
        asm.jump(BPF_JEQ | BPF_K, 0x60, To::At(Ipv6Tcp(l3)), To::At(Reject));
        asm.label(Ipv6Tcp(l3));
        asm.op(BPF_LD | BPF_B | BPF_ABS, l3 + 6);
        asm.jump(BPF_JEQ | BPF_K, 6, To::At(Ipv6Offset(l3)), To::At(Pass));
        asm.label(Ipv6Offset(l3));
        asm.op(BPF_LD | BPF_B | BPF_ABS, l3 + 40 + 12);
        asm.op(BPF_ALU | BPF_AND | BPF_K, 0xf0);
        asm.jump(BPF_JGE | BPF_K, 0x50, To::At(Pass), To::At(Reject));
        asm.label(Arp(l3));
        asm.op(BPF_LD | BPF_W | BPF_ABS, l3);
        asm.jump(
            BPF_JEQ | BPF_K,
            0x0001_0800,
            To::At(ArpLengths(l3)),
            To::At(Reject),
        );
        asm.label(ArpLengths(l3));
        asm.op(BPF_LD | BPF_H | BPF_ABS, l3 + 4);
        asm.jump(BPF_JEQ | BPF_K, 0x0604, To::At(Pass), To::At(Reject));
    }
    asm.label(Reject);
    asm.op(BPF_RET | BPF_K, 0);
    asm.label(Pass);
    asm.op(BPF_LD | BPF_IMM, 0);
    asm.op(BPF_LDX | BPF_IMM, 0);
    asm.finish()
}

#[cfg(test)]
mod tests;
