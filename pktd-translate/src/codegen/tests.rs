use pktd_filter::compile;

use crate::{Filter, Hook, Insn, MapFds, ProgramSpec, Sharing, translate};

const MAPS: MapFds = MapFds {
    verdicts: 3,
    jump: 4,
};

/// The program for `expressions`, one slot each.
fn translated(expressions: &[String], sharing: Sharing, hook: Hook) -> Vec<Insn> {
    let programs: Vec<_> = expressions
        .iter()
        .map(|expression| compile(expression, true, 262_144).unwrap())
        .collect();
    let filters: Vec<Filter<'_>> = programs
        .iter()
        .enumerate()
        .map(|(slot, program)| Filter {
            slot: slot as u32,
            program,
        })
        .collect();
    translate(&ProgramSpec {
        filters: &filters,
        hook,
        maps: MAPS,
        sharing,
        next: 1,
    })
    .unwrap()
    .insns
}

fn ports(count: u16) -> Vec<String> {
    (0..count)
        .map(|i| format!("udp dst port {}", 9000 + i))
        .collect()
}

#[test]
fn shared_port_filters_grow_by_a_few_instructions_each() {
    let one = translated(&ports(1), Sharing::Shared, Hook::Tc).len();
    let sixty_four = translated(&ports(64), Sharing::Shared, Hook::Tc).len();
    let separate = translated(&ports(64), Sharing::None, Hook::Tc).len();
    // Each extra filter adds its comparisons and accepts (one per IP
    // version), not its loads.
    assert!(
        sixty_four < one + 63 * 16,
        "64 shared filters: {sixty_four} instructions, one: {one}"
    );
    assert!(
        separate > 5 * sixty_four,
        "64 separate filters: {separate} instructions, shared: {sixty_four}"
    );
}

#[test]
fn every_jump_lands_inside_the_program() {
    let mut expressions = ports(5);
    expressions.push("tcp[tcpflags] & tcp-syn != 0".into());
    expressions.push("ip[2:2] - ((ip[0] & 0xf) << 2) > 100".into());
    for sharing in [Sharing::None, Sharing::Shared] {
        let insns = translated(&expressions, sharing, Hook::Xdp);
        for (at, insn) in insns.iter().enumerate() {
            let class = insn.code & 0x07;
            let op = insn.code & 0xf0;
            if (class == 0x05 || class == 0x06) && op != 0x80 && op != 0x90 {
                let target = at as isize + 1 + insn.off as isize;
                assert!(
                    target > at as isize && (target as usize) < insns.len(),
                    "{sharing:?}: jump at {at} to {target} of {}",
                    insns.len()
                );
            }
        }
    }
}

/// A program longer than 16-bit jump offsets reach is translated whole:
/// far unconditional jumps become `gotol` (JMP32 | JA, offset in imm) and
/// far conditional ones jump to one; every jump lands inside the program.
#[test]
fn far_jumps_go_through_32_bit_offsets() {
    use pktd_filter::{CbpfInsn, validate};
    // jeq over 4000 loads at different offsets (each a few eBPF
    // instructions), both ways far.
    let mut insns = vec![
        CbpfInsn::new(0x28, 0, 0, 12),
        CbpfInsn::new(0x15, 0, 1, 0x800),
        CbpfInsn::new(0x05, 0, 0, 4001),
    ];
    insns.extend((0..4000).map(|i| CbpfInsn::new(0x30, 0, 0, 14 + i % 200)));
    insns.push(CbpfInsn::new(0x06, 0, 0, 0));
    insns.push(CbpfInsn::new(0x06, 0, 0, 65535));
    let program = validate(&insns).unwrap();
    let filters = [Filter {
        slot: 0,
        program: &program,
    }];
    let out = translate(&ProgramSpec {
        filters: &filters,
        hook: Hook::Tc,
        maps: MAPS,
        sharing: Sharing::None,
        next: 1,
    })
    .expect("a long program translates")
    .insns;
    assert!(out.len() > i16::MAX as usize, "{} instructions", out.len());
    let gotols = out.iter().filter(|insn| insn.code == 0x06).count();
    assert!(gotols > 0, "no 32-bit jump in a long program");
    for (at, insn) in out.iter().enumerate() {
        let class = insn.code & 0x07;
        let is_jump = (class == 0x05 || class == 0x06)
            && insn.code & 0xf0 != 0x80
            && insn.code & 0xf0 != 0x90;
        if !is_jump {
            continue;
        }
        let offset = if insn.code == 0x06 {
            insn.imm as isize
        } else {
            insn.off as isize
        };
        let target = at as isize + 1 + offset;
        assert!(
            (0..out.len() as isize).contains(&target),
            "jump at {at} lands at {target}"
        );
    }
}
