//! A classic-BPF interpreter with the kernel's semantics, one instruction per
//! bpf_loop iteration.
//!
//! Programs were validated in user space with the kernel's rules, but the
//! interpreter still never trusts them: every index is masked and every
//! unexpected opcode ends the run with a rejection.

use core::ffi::c_void;

use pktd_common::{FilterProgram, MAX_INSNS, MEM_WORDS, SKF_AD_OFF};

use crate::packet::{HookContext, PacketView};

/// The state of one filter run.
#[repr(C)]
pub struct Vm<F: HookContext> {
    program: *const FilterProgram,
    packet: *const PacketView<F>,
    /// The filter's return value once it has run: 0 rejects the packet,
    /// anything else is the most bytes to capture.
    pub result: u32,
    /// 1 once the program has ended (by a return or a fault); 0 while it
    /// could still run, e.g. when its fuel ran out.
    pub ended: u32,
    /// Instructions the program may still execute for this packet.
    pub fuel: u32,
    pc: u32,
    a: u32,
    x: u32,
    mem: [u32; MEM_WORDS],
}

impl<F: HookContext> Vm<F> {
    #[inline(always)]
    pub fn new(program: &FilterProgram, packet: &PacketView<F>) -> Self {
        // `entry` is 0, read from the map so the verifier does not know it
        // (see FilterProgram::entry).
        let zero = program.entry;
        Self {
            program,
            packet,
            result: 0,
            ended: zero,
            fuel: zero,
            pc: zero,
            a: zero,
            x: zero,
            mem: [zero; MEM_WORDS],
        }
    }

    /// Executes one instruction; `None` once the program has ended (by a
    /// return, or by a fault that rejects the packet).
    #[inline(always)]
    fn execute(&mut self) -> Option<()> {
        // SAFETY: both pointers were made from references that outlive the
        // bpf_loop running this step.
        let (program, packet) = unsafe { (&*self.program, &*self.packet) };
        let pc = self.pc;
        if pc >= program.len {
            return None;
        }
        let insn = program.insns[pc as usize & (MAX_INSNS - 1)];
        self.pc = pc + 1;
        let k = insn.k;
        let code = insn.code;
        match code & 0x07 {
            // BPF_LD
            0x00 => {
                self.a = match code {
                    // Absolute loads at SKF_AD_OFF and above read the
                    // packet's metadata, whatever their size (the kernel's
                    // rule).
                    0x20 | 0x28 | 0x30 if k >= SKF_AD_OFF => packet.ancillary(k)?,
                    0x20 => packet.load::<4>(k)?,
                    0x28 => packet.load::<2>(k)?,
                    0x30 => packet.load::<1>(k)?,
                    0x40 => packet.load::<4>(self.indirect(k)?)?,
                    0x48 => packet.load::<2>(self.indirect(k)?)?,
                    0x50 => packet.load::<1>(self.indirect(k)?)?,
                    0x80 => packet.wire_len,
                    0x00 => k,
                    0x60 => self.mem[k as usize & (MEM_WORDS - 1)],
                    _ => return None,
                };
            }
            // BPF_LDX
            0x01 => {
                self.x = match code {
                    0x01 => k,
                    0x61 => self.mem[k as usize & (MEM_WORDS - 1)],
                    0x81 => packet.wire_len,
                    0xb1 => (packet.load::<1>(k)? & 0xf) << 2,
                    _ => return None,
                };
            }
            // BPF_ST, BPF_STX
            0x02 => self.mem[k as usize & (MEM_WORDS - 1)] = self.a,
            0x03 => self.mem[k as usize & (MEM_WORDS - 1)] = self.x,
            // BPF_ALU
            0x04 => {
                let operand = if code & 0x08 != 0 { self.x } else { k };
                let a = self.a;
                self.a = match code & 0xf0 {
                    0x00 => a.wrapping_add(operand),
                    0x10 => a.wrapping_sub(operand),
                    0x20 => a.wrapping_mul(operand),
                    // Division by zero (only possible with X) rejects.
                    0x30 => a.checked_div(operand)?,
                    0x40 => a | operand,
                    0x50 => a & operand,
                    // The kernel masks the shift amount to 5 bits.
                    0x60 => a.wrapping_shl(operand),
                    0x70 => a.wrapping_shr(operand),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(operand)?,
                    0xa0 => a ^ operand,
                    _ => return None,
                };
            }
            // BPF_JMP
            0x05 => {
                let operand = if code & 0x08 != 0 { self.x } else { k };
                let a = self.a;
                let taken = match code & 0xf0 {
                    0x00 => {
                        self.pc = self.pc.wrapping_add(k);
                        return Some(());
                    }
                    0x10 => a == operand,
                    0x20 => a > operand,
                    0x30 => a >= operand,
                    0x40 => a & operand != 0,
                    _ => return None,
                };
                let offset = if taken { insn.jt } else { insn.jf };
                self.pc += u32::from(offset);
            }
            // BPF_RET
            0x06 => {
                self.result = if code & 0x18 == 0x10 { self.a } else { k };
                return None;
            }
            // BPF_MISC
            _ => match code {
                0x07 => self.x = self.a,
                0x87 => self.a = self.x,
                _ => return None,
            },
        }
        Some(())
    }

    /// The offset of an indirect load, X + k with 32-bit wrap-around as in
    /// the kernel. Offsets that are negative as i32 would address the
    /// kernel's SKF_NET_OFF/SKF_LL_OFF areas, which pktd does not offer:
    /// they reject the packet.
    #[inline(always)]
    fn indirect(&self, k: u32) -> Option<u32> {
        let offset = self.x.wrapping_add(k);
        (offset as i32 >= 0).then_some(offset)
    }
}

/// bpf_loop callback: one instruction; returns 1 to end the loop.
pub extern "C" fn step<F: HookContext>(_index: u64, vm: *mut c_void) -> i64 {
    // SAFETY: `vm` is the `Vm` evaluate_client passed to bpf_loop.
    let vm = unsafe { &mut *vm.cast::<Vm<F>>() };
    if vm.fuel == 0 {
        return 1;
    }
    vm.fuel -= 1;
    match vm.execute() {
        Some(()) => 0,
        None => {
            vm.ended = 1;
            1
        }
    }
}
