//! The kernel program's per-client rules, checked in the real kernel through
//! BPF_PROG_TEST_RUN: snaplen, quotas, directions, ring overflow, filter
//! replacement, slot reuse and limits.

use pktd_common::{CbpfInsn, DIR_IN, DIR_OUT, MAX_CLIENTS};
use pktd_daemon::capture::{
    Attachment, CaptureError, ClientSpec, Engine, Hook, MAX_CHAIN, SlotEngine,
};
use pktd_filter::{ValidProgram, compile, validate};
use pktd_tests::{
    corpus::{self, tcp_frame},
    kernel::Bench,
};

fn filter(expression: &str) -> ValidProgram {
    compile(expression, true, 262_144).unwrap_or_else(|err| panic!("{expression}: {err}"))
}

fn udp_frame(dport: u16, payload_len: usize) -> Vec<u8> {
    corpus::numbered_udp_frame(dport, 0, payload_len)
}

#[test]
fn capture_length_is_the_least_of_filter_snaplen_and_packet() {
    let ret_20 = validate(&[CbpfInsn::new(0x06, 0, 0, 20)]).expect("ret #20");
    let spec = ClientSpec {
        snaplen: 60,
        ..ClientSpec::default()
    };
    let mut bench = Bench::with_spec(&[filter("udp"), ret_20], &spec);
    let frame = udp_frame(9000, 1000);
    let records = bench.run(&frame);
    let by_snaplen = records[0].as_ref().expect("udp matches");
    assert_eq!(by_snaplen.data, frame[..60]);
    assert_eq!(by_snaplen.wire_len, frame.len() as u32);
    let by_filter = records[1].as_ref().expect("ret #20 matches");
    assert_eq!(by_filter.data, frame[..20]);

    let short = udp_frame(9000, 0);
    let records = bench.run(&short);
    assert_eq!(
        records[0].as_ref().expect("udp matches").data,
        short[..short.len().min(60)]
    );
}

#[test]
fn packet_and_byte_quotas_are_enforced_in_the_kernel() {
    let mut bench = Bench::with_spec(
        &[filter("udp")],
        &ClientSpec {
            packet_quota: 3,
            ..ClientSpec::default()
        },
    );
    let frame = udp_frame(9000, 100);
    let delivered = (0..10).filter(|_| bench.run(&frame)[0].is_some()).count();
    assert_eq!(delivered, 3);
    let counters = bench.attachment.counters(bench.clients[0].slot()).unwrap();
    assert_eq!(
        (counters.matched, counters.delivered, counters.over_quota),
        (10, 3, 7)
    );

    // 142-byte frames against a 300-byte quota: two fit, the third would not.
    let mut bench = Bench::with_spec(
        &[filter("udp")],
        &ClientSpec {
            byte_quota: 300,
            ..ClientSpec::default()
        },
    );
    let delivered = (0..5).filter(|_| bench.run(&frame)[0].is_some()).count();
    assert_eq!(frame.len(), 142);
    assert_eq!(delivered, 2);
    let counters = bench.attachment.counters(bench.clients[0].slot()).unwrap();
    assert_eq!((counters.delivered_bytes, counters.over_quota), (284, 3));
}

#[test]
fn clients_see_only_their_directions() {
    let mut attachment = Attachment::detached(Engine::default(), Hook::Tc).unwrap();
    let spec = |directions| ClientSpec {
        directions,
        ..ClientSpec::default()
    };
    let mut inbound = attachment
        .add_client(&spec(DIR_IN), &filter("udp"))
        .unwrap();
    let mut outbound = attachment
        .add_client(&spec(DIR_OUT), &filter("udp"))
        .unwrap();
    let frame = udp_frame(9000, 10);
    attachment.test_run(DIR_IN, &frame, 1).unwrap();
    assert_eq!(
        inbound.next_record().expect("inbound record").direction,
        DIR_IN
    );
    assert!(outbound.next_record().is_none());
    attachment.test_run(DIR_OUT, &frame, 1).unwrap();
    assert!(inbound.next_record().is_none());
    assert_eq!(
        outbound.next_record().expect("outbound record").direction,
        DIR_OUT
    );
}

#[test]
fn a_full_ring_drops_for_that_client_only() {
    let mut attachment = Attachment::detached(Engine::default(), Hook::Tc).unwrap();
    let mut small = attachment
        .add_client(
            &ClientSpec {
                ring_bytes: 4096,
                ..ClientSpec::default()
            },
            &filter("udp"),
        )
        .unwrap();
    let mut large = attachment
        .add_client(&ClientSpec::default(), &filter("udp"))
        .unwrap();
    let frame = udp_frame(9000, 1000);
    for _ in 0..20 {
        attachment.test_run(DIR_IN, &frame, 1).unwrap();
    }
    let small_counters = attachment.counters(small.slot()).unwrap();
    let large_counters = attachment.counters(large.slot()).unwrap();
    assert!(small_counters.dropped > 0, "{small_counters:?}");
    assert_eq!(small_counters.delivered + small_counters.dropped, 20);
    assert_eq!((large_counters.delivered, large_counters.dropped), (20, 0));
    let read = std::iter::from_fn(|| small.next_record()).count() as u64;
    assert_eq!(read, small_counters.delivered);
    assert_eq!(std::iter::from_fn(|| large.next_record()).count(), 20);
}

#[test]
fn a_replaced_filter_applies_to_the_next_packet() {
    let mut bench = Bench::new(&[filter("udp dst port 9001")]);
    let slot = bench.clients[0].slot();
    assert!(bench.run(&udp_frame(9001, 10))[0].is_some());
    assert!(bench.run(&udp_frame(9002, 10))[0].is_none());
    bench
        .attachment
        .set_filter(slot, &filter("udp dst port 9002"))
        .unwrap();
    assert!(bench.run(&udp_frame(9001, 10))[0].is_none());
    assert!(bench.run(&udp_frame(9002, 10))[0].is_some());
}

#[test]
fn removed_slots_stop_at_once_and_are_reused_fresh() {
    let mut attachment = Attachment::detached(Engine::default(), Hook::Tc).unwrap();
    let mut first = attachment
        .add_client(&ClientSpec::default(), &filter("udp"))
        .unwrap();
    let frame = udp_frame(9000, 10);
    attachment.test_run(DIR_IN, &frame, 1).unwrap();
    assert!(first.next_record().is_some());
    let slot = first.slot();
    attachment.remove_client(slot).unwrap();
    attachment.test_run(DIR_IN, &frame, 1).unwrap();
    assert!(
        first.next_record().is_none(),
        "a removed client got a packet"
    );
    assert!(matches!(
        attachment.counters(slot),
        Err(CaptureError::NoSuchSlot { .. })
    ));

    let mut second = attachment
        .add_client(&ClientSpec::default(), &filter("tcp"))
        .unwrap();
    assert_ne!(
        second.slot(),
        slot,
        "a freed slot rests (live.rs: a_slot_given_back_rests_before_it_is_taken_again)"
    );
    let counters = attachment.counters(second.slot()).unwrap();
    assert_eq!(counters.seen, 0, "a new client starts with fresh counters");
    attachment.test_run(DIR_IN, &frame, 1).unwrap();
    assert!(second.next_record().is_none(), "udp frame, tcp filter");
}

#[test]
fn at_most_max_clients_per_attachment() {
    let mut attachment = Attachment::detached(Engine::default(), Hook::Tc).unwrap();
    let spec = ClientSpec {
        ring_bytes: 4096,
        ..ClientSpec::default()
    };
    let clients: Vec<_> = (0..MAX_CLIENTS)
        .map(|i| {
            attachment
                .add_client(&spec, &filter(&format!("udp dst port {}", 9000 + i)))
                .unwrap()
        })
        .collect();
    assert!(matches!(
        attachment.add_client(&spec, &filter("udp")),
        Err(CaptureError::SlotsFull { .. })
    ));
    // Every slot is evaluated: the last client gets its port.
    attachment
        .test_run(DIR_IN, &udp_frame(9000 + MAX_CLIENTS as u16 - 1, 10), 1)
        .unwrap();
    let mut last = clients.into_iter().last().unwrap();
    assert!(last.next_record().is_some());
}

#[test]
fn invalid_client_settings_are_refused() {
    let mut attachment = Attachment::detached(Engine::default(), Hook::Tc).unwrap();
    for spec in [
        ClientSpec {
            directions: 0,
            ..ClientSpec::default()
        },
        ClientSpec {
            directions: 4,
            ..ClientSpec::default()
        },
        ClientSpec {
            snaplen: 0,
            ..ClientSpec::default()
        },
        ClientSpec {
            ring_bytes: u32::MAX,
            ..ClientSpec::default()
        },
    ] {
        assert!(
            matches!(
                attachment.add_client(&spec, &filter("udp")),
                Err(CaptureError::InvalidSpec { .. })
            ),
            "{spec:?} accepted"
        );
    }
    assert_eq!(attachment.client_count(), 0);
}

#[test]
fn a_counting_client_counts_packets_and_bytes_and_copies_nothing() {
    let mut bench = Bench::with_spec(
        &[filter("udp dst port 9000")],
        &ClientSpec {
            count_only: true,
            ..ClientSpec::default()
        },
    );
    let frame = udp_frame(9000, 100);
    for _ in 0..7 {
        assert!(
            bench.run(&frame)[0].is_none(),
            "a counting client got a record"
        );
    }
    bench.run(&udp_frame(9001, 100));
    let counters = bench.attachment.counters(bench.clients[0].slot()).unwrap();
    assert_eq!((counters.seen, counters.matched), (8, 7));
    assert_eq!(counters.matched_bytes, 7 * frame.len() as u64);
    assert_eq!((counters.delivered, counters.dropped), (0, 0));
}

#[test]
fn interface_counters_count_packets_bytes_syns_and_synacks() {
    let mut bench = Bench::new(&[filter("udp")]);
    let frames = [
        (tcp_frame(0x02, 0), 1),  // SYN
        (tcp_frame(0x02, 1), 1),  // SYN behind a VLAN tag
        (tcp_frame(0x12, 0), 1),  // SYN-ACK
        (tcp_frame(0x10, 0), 1),  // ACK
        (udp_frame(9000, 10), 3), // not TCP
    ];
    let mut bytes = 0;
    let mut packets = 0;
    for (frame, times) in &frames {
        for _ in 0..*times {
            bench.run(frame);
            bytes += frame.len() as u64;
            packets += 1;
        }
    }
    let counters = bench.attachment.interface_counters().unwrap();
    assert_eq!((counters.packets, counters.bytes), (packets, bytes));
    assert_eq!((counters.tcp_syn, counters.tcp_synack), (2, 1));
}

/// A valid program longer than eBPF's 16-bit jump offsets reach: 4091
/// loads jumped over by one `ja` (some 20 eBPF instructions per load). It
/// accepts IPv4 frames.
fn long_ipv4_filter() -> ValidProgram {
    let mut insns = vec![
        CbpfInsn::new(0x28, 0, 0, 12),    // ldh [12]
        CbpfInsn::new(0x15, 0, 1, 0x800), // jeq #0x800, 2, 3
        CbpfInsn::new(0x05, 0, 0, 4092),  // ja 4095
    ];
    insns.extend(std::iter::repeat_n(CbpfInsn::new(0x28, 0, 0, 14), 4091));
    insns.push(CbpfInsn::new(0x06, 0, 0, 0)); // 4094: ret #0
    insns.push(CbpfInsn::new(0x06, 0, 0, 65535)); // 4095: ret #65535
    validate(&insns).expect("a valid program")
}

/// Checks the verdicts of `[udp dst port 9000, an IPv4 filter]`.
fn check_port_and_ipv4(bench: &mut Bench, engine: Engine) {
    let matching = udp_frame(9000, 10);
    let records = bench.run(&matching);
    assert_eq!(
        records[0].as_ref().map(|r| &r.data),
        Some(&matching),
        "{engine}"
    );
    assert_eq!(
        records[1].as_ref().map(|r| &r.data),
        Some(&matching),
        "{engine}"
    );
    let other_port = udp_frame(9001, 10);
    let records = bench.run(&other_port);
    assert!(records[0].is_none(), "{engine}");
    assert!(records[1].is_some(), "{engine}: IPv4 is accepted");
    let arp = [
        &[0xffu8; 6][..],
        &[2, 0, 0, 0, 0, 1],
        &[0x08, 0x06],
        &[0; 46],
    ]
    .concat();
    assert_eq!(bench.run(&arp), [None, None], "{engine}");
}

#[test]
fn filters_longer_than_short_jumps_reach_run_native() {
    for engine in [Engine::Shared, Engine::PerClient] {
        let filters = [filter("udp dst port 9000"), long_ipv4_filter()];
        let mut bench = Bench::with_engine(&filters, &ClientSpec::default(), engine);
        for client in &bench.clients {
            assert_eq!(
                bench.attachment.slot_engine(client.slot()).unwrap(),
                SlotEngine::Native,
                "{engine}: 32-bit jumps reach"
            );
        }
        check_port_and_ipv4(&mut bench, engine);
    }
}

/// Filters without native code are interpreted beside native ones, with
/// the same verdicts: here the per-client engine's chain is full
/// (`MAX_CHAIN` programs), so one more filter is interpreted.
#[test]
fn filters_without_native_code_are_interpreted_beside_native_ones() {
    let filters: Vec<ValidProgram> = (0..=MAX_CHAIN)
        .map(|i| filter(&format!("udp dst port {}", 9000 + i)))
        .collect();
    let mut bench = Bench::with_engine(&filters, &ClientSpec::default(), Engine::PerClient);
    let engines: Vec<SlotEngine> = bench
        .clients
        .iter()
        .map(|client| bench.attachment.slot_engine(client.slot()).unwrap())
        .collect();
    assert!(
        engines[..MAX_CHAIN]
            .iter()
            .all(|e| *e == SlotEngine::Native)
    );
    assert_eq!(engines[MAX_CHAIN], SlotEngine::Interpreted);
    for i in [0, MAX_CHAIN - 1, MAX_CHAIN] {
        let frame = udp_frame(9000 + i as u16, 10);
        let records = bench.run(&frame);
        for (client, record) in records.iter().enumerate() {
            assert_eq!(
                record.as_ref().map(|r| &r.data),
                (client == i).then_some(&frame),
                "port {}: client {client}",
                9000 + i
            );
        }
    }
}

#[test]
fn the_interpreter_engine_interprets_every_filter() {
    let filters = [filter("udp dst port 9000"), filter("udp")];
    let mut bench = Bench::with_engine(&filters, &ClientSpec::default(), Engine::Interpreter);
    for client in &bench.clients {
        assert_eq!(client.engine(), SlotEngine::Interpreted);
    }
    let frame = udp_frame(9000, 10);
    let records = bench.run(&frame);
    assert!(records.iter().all(Option::is_some));
}

/// A valid program that executes every one of its `len` instructions on
/// any frame of 16 bytes or more: loads, then `ret #keep` (just that when
/// `len` is 1).
fn straight_line_filter(len: usize, keep: u32) -> ValidProgram {
    let mut insns = vec![CbpfInsn::new(0x28, 0, 0, 14); len - 1]; // ldh [14]
    insns.push(CbpfInsn::new(0x06, 0, 0, keep));
    validate(&insns).expect("a valid program")
}

/// The interpreter's per-packet budget is shared by the filters' lengths,
/// max-min fair: long filters run out of their share (and are counted so),
/// a short filter after them is still judged, a filter interpreted alone
/// runs to its end even at the longest length classic BPF allows, and many
/// tiny filters do not dilute a longer one's share.
#[test]
fn interpreted_filters_share_a_per_packet_budget() {
    let frame = udp_frame(9000, 10);

    let alone = [straight_line_filter(pktd_common::MAX_INSNS, 65535)];
    let mut bench = Bench::with_engine(&alone, &ClientSpec::default(), Engine::Interpreter);
    assert!(bench.run(&frame)[0].is_some(), "4096 instructions fit");
    let counters = bench.attachment.counters(bench.clients[0].slot()).unwrap();
    assert_eq!(counters.over_budget, 0);

    let long = || straight_line_filter(pktd_common::MAX_INSNS, 65535);
    let filters = [long(), long(), long(), filter("udp")];
    let mut bench = Bench::with_engine(&filters, &ClientSpec::default(), Engine::Interpreter);
    for round in 1..=3u64 {
        let records = bench.run(&frame);
        assert_eq!(
            records.iter().map(Option::is_some).collect::<Vec<_>>(),
            [false, false, false, true],
            "round {round}: only the short filter ends within its share"
        );
        let over: Vec<u64> = bench
            .clients
            .iter()
            .map(|client| {
                bench
                    .attachment
                    .counters(client.slot())
                    .unwrap()
                    .over_budget
            })
            .collect();
        assert_eq!(over, [round, round, round, 0]);
    }

    // A 1000-instruction filter beside 60 one-instruction ones: an even
    // split (4096 / 61 = 67) would cut it short; its length fits what the
    // tiny ones leave.
    let mut filters = vec![straight_line_filter(1000, 65535)];
    filters.extend((0..60).map(|_| straight_line_filter(1, 0)));
    let mut bench = Bench::with_engine(&filters, &ClientSpec::default(), Engine::Interpreter);
    assert!(bench.run(&frame)[0].is_some(), "judged within its share");
    let counters = bench.attachment.counters(bench.clients[0].slot()).unwrap();
    assert_eq!(counters.over_budget, 0);
}

/// The ancillary loads libpcap's `inbound`, `outbound`, `ifindex N` and a
/// protocol test compile to, on every engine (the interpreter in the
/// kernel program, native code alone and merged): the packet type
/// (PACKET_OUTGOING for sent packets, as AF_PACKET's taps see them), the
/// interface index, the skb's protocol. The VLAN metadata, which a test
/// run cannot set, is checked on live traffic (`ancillary.rs`).
#[test]
fn every_engine_reads_the_packet_type_ifindex_and_protocol() {
    // ld proto; jeq #0x800 → ret #262144; ret #0
    let ipv4_by_protocol = validate(&[
        CbpfInsn::new(0x28, 0, 0, 0xffff_f000),
        CbpfInsn::new(0x15, 0, 1, 0x0800),
        CbpfInsn::new(0x06, 0, 0, 262_144),
        CbpfInsn::new(0x06, 0, 0, 0),
    ])
    .unwrap();
    for engine in [Engine::Interpreter, Engine::PerClient, Engine::Shared] {
        let mut attachment = Attachment::detached(engine, Hook::Tc).unwrap();
        let both = ClientSpec {
            directions: DIR_IN | DIR_OUT,
            ..ClientSpec::default()
        };
        let mut inbound = attachment.add_client(&both, &filter("inbound")).unwrap();
        let mut outbound = attachment.add_client(&both, &filter("outbound")).unwrap();
        // The test run's packet is on the loopback device, index 1.
        let mut on_lo = attachment
            .add_client(&both, &filter("ifindex 1 and udp"))
            .unwrap();
        let mut elsewhere = attachment.add_client(&both, &filter("ifindex 2")).unwrap();
        let mut ipv4 = attachment.add_client(&both, &ipv4_by_protocol).unwrap();
        // ld pkttype; ret a (+1, so that PACKET_HOST accepts too): the
        // capture length says the type.
        let packet_type = validate(&[
            CbpfInsn::new(0x20, 0, 0, 0xffff_f004),
            CbpfInsn::new(0x04, 0, 0, 1),
            CbpfInsn::new(0x16, 0, 0, 0),
        ])
        .unwrap();
        let mut types = attachment.add_client(&both, &packet_type).unwrap();
        let expected = match engine {
            Engine::Interpreter => SlotEngine::Interpreted,
            _ => SlotEngine::Native,
        };
        for ring in [&inbound, &outbound, &on_lo, &elsewhere, &ipv4, &types] {
            assert_eq!(attachment.slot_engine(ring.slot()).unwrap(), expected);
        }
        let frame = udp_frame(9000, 10);
        attachment.test_run(DIR_IN, &frame, 1).unwrap();
        assert!(
            inbound.next_record().is_some(),
            "{engine:?}: inbound, received"
        );
        assert!(
            outbound.next_record().is_none(),
            "{engine:?}: outbound, received"
        );
        attachment.test_run(DIR_OUT, &frame, 1).unwrap();
        assert!(inbound.next_record().is_none(), "{engine:?}: inbound, sent");
        assert!(
            outbound.next_record().is_some(),
            "{engine:?}: outbound, sent"
        );
        for _ in 0..2 {
            assert!(on_lo.next_record().is_some(), "{engine:?}: ifindex 1");
            assert!(ipv4.next_record().is_some(), "{engine:?}: protocol 0x800");
        }
        assert!(elsewhere.next_record().is_none(), "{engine:?}: ifindex 2");
        // On the loopback device (address 00:00:00:00:00:00) the frame to
        // 02:00:00:00:00:02 is PACKET_OTHERHOST (3), one to the device's
        // own address PACKET_HOST (0), a multicast one PACKET_MULTICAST
        // (2); sent, PACKET_OUTGOING (4).
        let mut to_host = frame.clone();
        to_host[..6].fill(0);
        let mut to_group = frame.clone();
        to_group[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 1]);
        attachment.test_run(DIR_IN, &to_host, 1).unwrap();
        attachment.test_run(DIR_IN, &to_group, 1).unwrap();
        let lengths: Vec<usize> = std::iter::from_fn(|| types.next_record())
            .map(|record| record.data.len())
            .collect();
        assert_eq!(lengths, [4, 5, 1, 3], "{engine:?}: packet types + 1");
        while inbound.next_record().is_some() {}
        while on_lo.next_record().is_some() {}
        while ipv4.next_record().is_some() {}
        // An IPv6 frame: the protocol test says no.
        let mut ipv6 = vec![0u8; 60];
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        ipv6[14] = 0x60;
        attachment.test_run(DIR_IN, &ipv6, 1).unwrap();
        assert!(ipv4.next_record().is_none(), "{engine:?}: protocol 0x86dd");
        assert!(inbound.next_record().is_some(), "{engine:?}: inbound IPv6");
    }
}

/// Attachments share the kernel program: a packet through one
/// attachment's entry program reaches that attachment's sessions only,
/// whatever the others' filters, engines and slots; and an attachment
/// index given back comes to the next attachment without anything of its
/// previous one (native code, sessions, counters).
#[test]
fn attachments_share_the_programs_and_nothing_else() {
    let frame = udp_frame(9000, 10);
    let engines = [Engine::Shared, Engine::PerClient, Engine::Interpreter];
    let mut benches: Vec<Bench> = engines
        .iter()
        .map(|engine| Bench::with_engine(&[filter("udp")], &ClientSpec::default(), *engine))
        .collect();
    let mut indices: Vec<u32> = benches.iter().map(|b| b.attachment.index()).collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), 3, "each attachment has its own index");
    for through in 0..benches.len() {
        let records = benches[through].run(&frame);
        assert!(records[0].is_some(), "{through}: its own session missed it");
        for (other, bench) in benches.iter_mut().enumerate() {
            if other != through {
                assert!(
                    bench.clients[0].next_record().is_none(),
                    "a packet through attachment {through} reached attachment {other}"
                );
            }
        }
    }
    for bench in &benches {
        let interface = bench.attachment.interface_counters().unwrap();
        assert_eq!(interface.packets, 1, "each counted its own packet only");
        let counters = bench.attachment.counters(bench.clients[0].slot()).unwrap();
        assert_eq!((counters.matched, counters.delivered), (1, 1));
    }

    // The shared engine's attachment goes; once its index has rested, a
    // later attachment gets it (tests beside this one take indices too:
    // take until it comes), and starts clean.
    let gone = benches.remove(0);
    let index = gone.attachment.index();
    drop(gone);
    std::thread::sleep(pktd_daemon::capture::QUARANTINE * 2);
    let mut taken = Vec::new();
    let mut next = loop {
        let attachment = Attachment::detached(Engine::Shared, Hook::Tc).unwrap();
        if attachment.index() == index {
            break attachment;
        }
        taken.push(attachment);
        assert!(taken.len() < 256, "index {index} never came back");
    };
    next.test_run(DIR_IN, &frame, 1).unwrap();
    let interface = next.interface_counters().unwrap();
    assert_eq!(interface.packets, 0, "no session: nothing counted");
    let mut ring = next
        .add_client(&ClientSpec::default(), &filter("tcp"))
        .unwrap();
    next.test_run(DIR_IN, &frame, 1).unwrap();
    assert!(
        ring.next_record().is_none(),
        "the previous occupant's `udp` decided for the new session"
    );
    let counters = next.counters(ring.slot()).unwrap();
    assert_eq!(
        (counters.seen, counters.matched, counters.delivered),
        (1, 0, 0)
    );
    assert_eq!(next.interface_counters().unwrap().packets, 1);
}

/// A session whose filter leaves the native chain for the interpreter (a
/// new session took a lower slot of a full per-client chain) misses no
/// packet meanwhile: its filter is in the interpreter's map, and the
/// slot interpreted, before the chain without it runs.
#[test]
fn a_slot_pushed_into_the_interpreter_misses_nothing() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    };
    let udp = filter("udp");
    let spec = ClientSpec {
        count_only: true,
        ..ClientSpec::default()
    };
    let mut attachment = Attachment::detached(Engine::PerClient, Hook::Tc).unwrap();
    let mut rings = Vec::new();
    for _ in 0..MAX_CHAIN {
        rings.push(attachment.add_client(&spec, &udp).unwrap());
    }
    // Free the first ten slots and fill every other: the chain then ends
    // ten slots further, at the victim, which has never been interpreted.
    for slot in 0..10 {
        attachment.remove_client(slot).unwrap();
    }
    for _ in MAX_CHAIN as u32..MAX_CLIENTS {
        rings.push(attachment.add_client(&spec, &udp).unwrap());
    }
    let victim = MAX_CHAIN as u32 + 9;
    assert_eq!(attachment.slot_engine(victim).unwrap(), SlotEngine::Native);
    assert_eq!(
        attachment.slot_engine(victim + 1).unwrap(),
        SlotEngine::Interpreted
    );
    std::thread::sleep(pktd_daemon::capture::QUARANTINE * 2);
    let before = attachment.counters(victim).unwrap().matched;

    let runner = attachment
        .test_runner(pktd_daemon::capture::Entry::Ingress)
        .unwrap();
    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let traffic = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let frame = udp_frame(9000, 10);
            while !stop.load(Ordering::SeqCst) {
                runner.run(&frame).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(30));
    // Slot 0 again: the victim is pushed past the chain's end.
    let pusher = attachment.add_client(&spec, &udp).unwrap();
    assert_eq!(pusher.slot(), 0);
    assert_eq!(
        attachment.slot_engine(victim).unwrap(),
        SlotEngine::Interpreted
    );
    std::thread::sleep(std::time::Duration::from_millis(30));
    stop.store(true, Ordering::SeqCst);
    traffic.join().unwrap();
    let sent = sent.load(Ordering::SeqCst);
    let matched = attachment.counters(victim).unwrap().matched - before;
    assert!(sent > 100, "too little traffic to tell: {sent}");
    assert_eq!(matched, sent, "packets the pushed slot missed");
}
