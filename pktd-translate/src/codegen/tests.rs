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
