//! The capture path on a real interface: a veth pair between two throw-away
//! namespaces, frames sent from the peer with AF_PACKET, the kernel program
//! attached at TC, each client reading its own ring buffer.

use std::{
    os::fd::AsRawFd,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use pktd_common::{DIR_IN, DIR_OUT};
use pktd_daemon::capture::{Attachment, ClientSpec, Engine, Hook, Record, Ring, SlotEngine};
use pktd_filter::{ValidProgram, compile, pcap_offline_filter};
use pktd_tests::{corpus, netlab::Lab, sys};

fn filter(expression: &str) -> ValidProgram {
    compile(expression, true, 262_144).unwrap_or_else(|err| panic!("{expression}: {err}"))
}

/// Everything waiting in the client's ring, until it stays empty for
/// `idle`.
fn drain(client: &mut Ring, idle: Duration) -> Vec<Record> {
    let mut records = Vec::new();
    loop {
        while let Some(record) = client.next_record() {
            records.push(record);
        }
        if !sys::wait_readable(client.as_raw_fd(), idle.as_millis() as i32) {
            return records;
        }
    }
}

/// What libpcap says a client with `program` must get from `frames`.
fn expected(program: &ValidProgram, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter_map(|frame| {
            let verdict = pcap_offline_filter(program.insns(), frame, frame.len() as u32);
            (verdict != 0).then(|| frame[..frame.len().min(verdict as usize)].to_vec())
        })
        .collect()
}

use corpus::{numbered_udp_frame as udp_frame, sequence_and_port};

#[test]
fn many_clients_each_get_exactly_their_frames_as_sent() {
    let lab = Lab::new();
    let attachment = Attachment::attach(
        &lab.capture_netns(),
        &lab.capture_if,
        Engine::default(),
        Hook::Tc,
    )
    .expect("attaching");
    many_clients_each_get_exactly_their_frames(&lab, attachment);
}

/// The same at the XDP hook, which sees received frames before the kernel
/// takes their VLAN tag out.
#[test]
fn many_clients_each_get_exactly_their_frames_at_xdp() {
    let lab = Lab::new();
    let attachment = Attachment::attach(
        &lab.capture_netns(),
        &lab.capture_if,
        Engine::Shared,
        Hook::Xdp,
    )
    .expect("attaching at XDP");
    assert_eq!(attachment.hook(), Hook::Xdp);
    many_clients_each_get_exactly_their_frames(&lab, attachment);
}

/// A session wanting sent packets moves an XDP attachment to TC while
/// traffic flows: every frame reaches the client exactly once.
#[test]
fn moving_from_xdp_to_tc_under_traffic_loses_and_doubles_nothing() {
    let lab = Lab::new();
    let mut attachment = Attachment::attach(
        &lab.capture_netns(),
        &lab.capture_if,
        Engine::Shared,
        Hook::Xdp,
    )
    .expect("attaching at XDP");
    let mut client = attachment.add_client(&received(), &filter("udp")).unwrap();
    assert!(
        attachment
            .add_client(&ClientSpec::default(), &filter("udp"))
            .is_err(),
        "XDP refuses a client wanting sent packets"
    );
    let sequences = move_under_traffic(&lab, &mut attachment, &mut client, |attachment| {
        attachment.move_to_tc().expect("moving to TC");
        assert_eq!(attachment.hook(), Hook::Tc);
    });
    assert_received_once(sequences);
    let mut both = attachment
        .add_client(&ClientSpec::default(), &filter("udp"))
        .expect("TC takes a client wanting both directions");
    lab.sender().send(&udp_frame(9000, 0, 18));
    assert_eq!(drain(&mut both, Duration::from_millis(200)).len(), 1);
}

/// And back: when only clients wanting received packets are left, TC hands
/// over to XDP, again without losing or doubling a frame.
#[test]
fn moving_from_tc_to_xdp_under_traffic_loses_and_doubles_nothing() {
    let lab = Lab::new();
    let mut attachment = Attachment::attach(
        &lab.capture_netns(),
        &lab.capture_if,
        Engine::default(),
        Hook::Tc,
    )
    .expect("attaching at TC");
    let both = attachment
        .add_client(&ClientSpec::default(), &filter("udp"))
        .unwrap();
    let mut client = attachment.add_client(&received(), &filter("udp")).unwrap();
    assert!(
        attachment.move_to_xdp().is_err(),
        "a client wanting sent packets keeps the attachment at TC"
    );
    attachment.remove_client(both.slot()).unwrap();
    let sequences = move_under_traffic(&lab, &mut attachment, &mut client, |attachment| {
        attachment.move_to_xdp().expect("moving to XDP");
        assert_eq!(attachment.hook(), Hook::Xdp);
    });
    assert_received_once(sequences);
}

/// Back and forth many times under traffic: at each hand-over, frames in
/// flight between XDP and TC ingress are judged by the mark XDP left in
/// their metadata, so that however the flag's flip falls, exactly one hook
/// serves each frame.
#[test]
fn moving_back_and_forth_under_traffic_loses_and_doubles_nothing() {
    let lab = Lab::new();
    let mut attachment = Attachment::attach(
        &lab.capture_netns(),
        &lab.capture_if,
        Engine::default(),
        Hook::Tc,
    )
    .expect("attaching at TC");
    let mut client = attachment.add_client(&received(), &filter("udp")).unwrap();
    let sequences = move_under_traffic(&lab, &mut attachment, &mut client, |attachment| {
        for _ in 0..ROUND_TRIPS {
            attachment.move_to_xdp().expect("moving to XDP");
            assert_eq!(attachment.hook(), Hook::Xdp);
            std::thread::sleep(Duration::from_millis(5));
            attachment.move_to_tc().expect("moving to TC");
            assert_eq!(attachment.hook(), Hook::Tc);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    assert_received_once(sequences);
}

/// Moves there and back in `moving_back_and_forth_...`.
const ROUND_TRIPS: usize = 12;

/// Most frames sent around one move.
const MOVE_FRAMES: u64 = 200_000;

fn received() -> ClientSpec {
    ClientSpec {
        directions: DIR_IN,
        ..ClientSpec::default()
    }
}

/// Sends numbered frames, paced so that no queue on the way overflows,
/// from before `move_hook` runs until shortly after (at most MOVE_FRAMES);
/// returns how many were sent and the sequence numbers `client` got.
/// `client` is read all along, so that a move slowed by a busy machine (the
/// verifier's load of the XDP program can take seconds) cannot fill its
/// ring: a frame missing here is the move's fault, never the ring's.
fn move_under_traffic(
    lab: &Lab,
    attachment: &mut Attachment,
    client: &mut Ring,
    move_hook: impl FnOnce(&mut Attachment),
) -> (u64, Vec<u64>) {
    let sender = lab.sender();
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let sequences = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut sequence = 0;
            while sequence < MOVE_FRAMES && !stop.load(Ordering::Relaxed) {
                sender.send(&udp_frame(9000, sequence, 18));
                if sequence % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                sequence += 1;
            }
            sent.store(sequence, Ordering::Relaxed);
            finished.store(true, Ordering::Release);
        });
        let reading = scope.spawn(|| {
            let mut sequences = Vec::new();
            loop {
                let done = finished.load(Ordering::Acquire);
                // After the sender stops, one quiet spell ends the reading.
                let idle = if done { 300 } else { 20 };
                while let Some(record) = client.next_record() {
                    sequences.push(sequence_and_port(&record.data).0);
                }
                if !sys::wait_readable(client.as_raw_fd(), idle) && done {
                    return sequences;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(40));
        move_hook(attachment);
        std::thread::sleep(Duration::from_millis(40));
        stop.store(true, Ordering::Relaxed);
        reading.join().unwrap()
    });
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent < MOVE_FRAMES, "the move outlasted the traffic");
    assert_eq!(
        attachment.counters(client.slot()).unwrap().dropped,
        0,
        "the reader fell behind: the ring dropped frames"
    );
    (sent, sequences)
}

fn assert_received_once((sent, mut sequences): (u64, Vec<u64>)) {
    sequences.sort_unstable();
    let doubled: Vec<u64> = sequences
        .windows(2)
        .filter(|pair| pair[0] == pair[1])
        .map(|pair| pair[0])
        .collect();
    sequences.dedup();
    let missing: Vec<u64> = (0..sent)
        .filter(|sequence| sequences.binary_search(sequence).is_err())
        .collect();
    let strays = sequences
        .iter()
        .filter(|&&sequence| sequence >= sent)
        .count();
    assert!(
        doubled.is_empty() && missing.is_empty() && strays == 0,
        "of {sent} frames, {} delivered twice ({:?}), {} lost ({:?}), {strays} never sent",
        doubled.len(),
        &doubled[..doubled.len().min(20)],
        missing.len(),
        &missing[..missing.len().min(20)],
    );
}

fn many_clients_each_get_exactly_their_frames(lab: &Lab, mut attachment: Attachment) {
    let expressions = [
        "udp",
        "tcp",
        "vlan",
        "vlan 100 and udp",
        "arp",
        "ip6",
        "tcp[tcpflags] & tcp-syn != 0",
        "not ip and not ip6",
        "port 53 or port 80",
        "len > 500",
        "ip[6:2] & 0x1fff != 0",
    ];
    let programs: Vec<ValidProgram> = expressions.iter().map(|e| filter(e)).collect();
    let spec = ClientSpec {
        directions: DIR_IN,
        ..ClientSpec::default()
    };
    let mut clients: Vec<Ring> = programs
        .iter()
        .map(|program| {
            attachment
                .add_client(&spec, program)
                .expect("adding a client")
        })
        .collect();

    // Frames the kernel delivers to TC unchanged: at most MTU-sized, and no
    // VLAN EtherType without a tag and two more bytes (skb_vlan_untag drops
    // those on receive, before any hook — tcpdump never sees them either).
    let frames: Vec<Vec<u8>> = corpus::packets(400, 7)
        .into_iter()
        .map(|packet| packet.bytes)
        .filter(|frame| frame.len() <= 1514)
        .filter(|frame| {
            let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
            !matches!(ethertype, 0x8100 | 0x88a8) || frame.len() >= 20
        })
        .collect();
    let tagged = frames
        .iter()
        .filter(|frame| frame[12] == 0x81 && frame[13] == 0x00)
        .count();
    assert!(tagged > 10, "only {tagged} VLAN-tagged frames");

    let sender = lab.sender();
    for frame in &frames {
        sender.send(frame);
    }

    let capture_ifindex = attachment.ifindex().expect("attached");
    for ((expression, program), client) in expressions.iter().zip(&programs).zip(&mut clients) {
        let records = drain(client, Duration::from_millis(300));
        for record in &records {
            assert_eq!(record.direction, DIR_IN, "{expression}");
            assert_eq!(record.ifindex, capture_ifindex, "{expression}");
            assert!(record.data.len() as u32 <= record.wire_len, "{expression}");
        }
        let mut got: Vec<Vec<u8>> = records.into_iter().map(|record| record.data).collect();
        let mut want = expected(program, &frames);
        assert!(!want.is_empty(), "{expression} matches none of the frames");
        got.sort();
        want.sort();
        assert_eq!(
            got.len(),
            want.len(),
            "{expression}: got {} frames, libpcap says {}",
            got.len(),
            want.len()
        );
        assert!(got == want, "{expression}: frames differ from those sent");
        let counters = attachment.counters(client.slot()).unwrap();
        assert_eq!(counters.delivered, want.len() as u64, "{expression}");
        assert_eq!(counters.dropped, 0, "{expression}");
    }
}

/// Frames whose outer VLAN tag the receive path moves into skb metadata
/// (802.1Q and 802.1ad, one or two tags) are judged by the native code as
/// libpcap judges the frame as sent, tag in place: loads before, across
/// and past the tag, indirect ones, the length. No filter is interpreted.
#[test]
fn tagged_frames_run_native_code_and_get_libpcap_verdicts() {
    let lab = Lab::new();
    let mut attachment = Attachment::attach(
        &lab.capture_netns(),
        &lab.capture_if,
        Engine::default(),
        Hook::Tc,
    )
    .expect("attaching");
    let expressions = [
        "vlan",
        "vlan 100",
        "vlan 100 and udp",
        "vlan and vlan 200",
        "vlan and vlan and tcp",
        "vlan and udp dst port 9000",
        "vlan and tcp port 80",
        "vlan and ip[9] = 17",
        "vlan and ip6 and udp",
        "vlan and icmp",
        "udp",
        "ip or ip6",
        "ether[12:2] = 0x88a8",
        "ether[14:2] & 0xfff = 100",
        "ether[10:4] & 0xffff = 0x8100",
        "ether[13:4] != 0",
        "ether[15] = 100 and ether[16:2] = 0x0800",
        "ether[20:4] > 0x45000000",
        "greater 200",
        "less 100",
        "vlan and tcp[tcpflags] & tcp-syn != 0",
        "not vlan",
    ];
    let programs: Vec<ValidProgram> = expressions.iter().map(|e| filter(e)).collect();
    let spec = ClientSpec {
        directions: DIR_IN,
        ..ClientSpec::default()
    };
    let mut clients: Vec<Ring> = programs
        .iter()
        .map(|program| attachment.add_client(&spec, program).expect("a client"))
        .collect();
    for (expression, client) in expressions.iter().zip(&clients) {
        assert_eq!(client.engine(), SlotEngine::Native, "{expression}");
    }

    // The corpus's frames, each also with one tag (TCI 100 or 200, 802.1Q
    // or 802.1ad) and two; within what veth forwards (MTU plus one tag).
    let base: Vec<Vec<u8>> = corpus::packets(300, 11)
        .into_iter()
        .map(|packet| packet.bytes)
        .filter(|frame| frame.len() <= 1496 && frame.len() >= 20)
        .filter(|frame| !matches!(u16::from_be_bytes([frame[12], frame[13]]), 0x8100 | 0x88a8))
        .collect();
    let mut frames = Vec::new();
    for (i, frame) in base.iter().enumerate() {
        let (tpid, tci) = [(0x8100, 100), (0x88a8, 200), (0x8100, 0x2000 | 100)][i % 3];
        let once = corpus::vlan_tag(frame, tpid, tci);
        frames.push(corpus::vlan_tag(&once, 0x88a8, 200));
        frames.push(once);
        frames.push(frame.clone());
    }
    let sender = lab.sender();
    for frame in &frames {
        sender.send(frame);
    }

    for ((expression, program), client) in expressions.iter().zip(&programs).zip(&mut clients) {
        let mut got: Vec<Vec<u8>> = drain(client, Duration::from_millis(300))
            .into_iter()
            .map(|record| record.data)
            .collect();
        let mut want = expected(program, &frames);
        assert!(!want.is_empty(), "{expression} matches none of the frames");
        got.sort();
        want.sort();
        assert_eq!(got.len(), want.len(), "{expression}");
        assert!(got == want, "{expression}: frames differ from libpcap's");
    }
    let interface = attachment.interface_counters().unwrap();
    assert!(interface.received >= frames.len() as u64);
    assert_eq!(
        interface.interpreted, 0,
        "tagged frames ran native code, no filter was interpreted"
    );
}

#[test]
fn tagged_frames_keep_their_tag_on_ingress_and_egress() {
    let lab = Lab::new();
    let bridge_port = lab.bridge_capture_to_new_port();
    let spec = |directions| ClientSpec {
        directions,
        ..ClientSpec::default()
    };
    let vlan_udp = filter("vlan 100 and udp");
    // Ingress on the capture side: the receive path moves the tag into skb
    // metadata before TC.
    let mut ingress = Attachment::attach(
        &lab.capture_netns(),
        &lab.capture_if,
        Engine::default(),
        Hook::Tc,
    )
    .expect("attaching ingress");
    let mut received = ingress.add_client(&spec(DIR_IN), &vlan_udp).unwrap();
    let mut untagged_view = ingress.add_client(&spec(DIR_IN), &filter("udp")).unwrap();
    // Egress of the bridge port: the tag is still in metadata there.
    let mut egress = Attachment::attach(
        &lab.capture_netns(),
        &bridge_port,
        Engine::default(),
        Hook::Tc,
    )
    .expect("attaching egress");
    let mut forwarded = egress.add_client(&spec(DIR_OUT), &vlan_udp).unwrap();

    let on_wire: Vec<Vec<u8>> = (0..20)
        .map(|i| corpus::vlan_tag(&udp_frame(9000, i, 100), 0x8100, 100))
        .collect();
    let sender = lab.sender();
    for frame in &on_wire {
        sender.send(frame);
    }
    for (name, client) in [("ingress", &mut received), ("egress", &mut forwarded)] {
        let records = drain(client, Duration::from_millis(300));
        let got: Vec<&[u8]> = records
            .iter()
            .map(|record| record.data.as_slice())
            .collect();
        assert_eq!(got.len(), on_wire.len(), "{name}");
        for (got, sent) in got.iter().zip(&on_wire) {
            assert_eq!(
                got, sent,
                "{name}: a frame differs from the tagged frame sent"
            );
        }
    }
    // `udp` alone does not match a tagged frame, exactly as libpcap says.
    assert!(drain(&mut untagged_view, Duration::from_millis(100)).is_empty());
}

#[test]
fn a_filter_swapped_under_traffic_applies_whole() {
    let lab = Lab::new();
    let mut attachment = Attachment::attach(
        &lab.capture_netns(),
        &lab.capture_if,
        Engine::default(),
        Hook::Tc,
    )
    .expect("attaching");
    let spec = ClientSpec {
        directions: DIR_IN,
        ring_bytes: 16 << 20,
        ..ClientSpec::default()
    };
    let mut client = attachment
        .add_client(&spec, &filter("udp dst port 9001"))
        .unwrap();
    let slot = client.slot();
    const FRAMES: u64 = 6000;
    let sent = AtomicU64::new(0);
    let swapped = AtomicBool::new(false);
    let (before_swap, after_swap) = std::thread::scope(|scope| {
        let sender = lab.sender();
        let (sent, swapped) = (&sent, &swapped);
        scope.spawn(move || {
            for sequence in 0..FRAMES {
                // Ports 9001, 9002, 9003 in turn; 9003 matches neither filter.
                let port = 9001 + (sequence % 3) as u16;
                sender.send(&udp_frame(port, sequence, 64));
                sent.store(sequence + 1, Ordering::SeqCst);
                // The last third waits for the swap, so that it happens while
                // traffic flows even on a loaded machine (bounded: 10 s).
                if sequence == 2 * FRAMES / 3 {
                    let deadline = std::time::Instant::now() + Duration::from_secs(10);
                    while !swapped.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                        std::thread::yield_now();
                    }
                }
            }
        });
        while sent.load(Ordering::SeqCst) < FRAMES / 3 {
            std::thread::yield_now();
        }
        let before = sent.load(Ordering::SeqCst);
        attachment
            .set_filter(slot, &filter("udp dst port 9002"))
            .unwrap();
        let after = sent.load(Ordering::SeqCst);
        swapped.store(true, Ordering::SeqCst);
        (before, after)
    });
    assert!(after_swap < FRAMES, "the swap happened after the traffic");

    let records = drain(&mut client, Duration::from_millis(300));
    let mut seen_old = 0;
    let mut seen_new = 0;
    for record in &records {
        let (sequence, port) = sequence_and_port(&record.data);
        match port {
            9001 => {
                assert!(
                    sequence <= after_swap,
                    "old filter matched frame {sequence} after the swap"
                );
                seen_old += 1;
            }
            9002 => {
                assert!(
                    sequence + 1 >= before_swap,
                    "new filter matched frame {sequence} before the swap"
                );
                seen_new += 1;
            }
            other => panic!("frame {sequence} to port {other} matched neither filter"),
        }
    }
    // Every frame sent entirely before the swap went by the old filter, every
    // frame after it by the new one.
    let old_expected = (0..before_swap.saturating_sub(1))
        .filter(|s| s % 3 == 0)
        .count();
    let new_expected = (after_swap + 1..FRAMES).filter(|s| s % 3 == 1).count();
    assert!(seen_old >= old_expected, "{seen_old} < {old_expected}");
    assert!(seen_new >= new_expected, "{seen_new} < {new_expected}");
    let counters = attachment.counters(slot).unwrap();
    assert_eq!(counters.dropped, 0);
    assert_eq!(counters.delivered, records.len() as u64);
}

#[test]
fn a_full_ring_is_counted_as_drops_for_that_client_only() {
    let lab = Lab::new();
    let mut attachment = Attachment::attach(
        &lab.capture_netns(),
        &lab.capture_if,
        Engine::default(),
        Hook::Tc,
    )
    .expect("attaching");
    let small_ring = ClientSpec {
        directions: DIR_IN,
        ring_bytes: 8192,
        ..ClientSpec::default()
    };
    let large_ring = ClientSpec {
        directions: DIR_IN,
        ..ClientSpec::default()
    };
    let mut slow = attachment.add_client(&small_ring, &filter("udp")).unwrap();
    let mut fast = attachment.add_client(&large_ring, &filter("udp")).unwrap();
    let sender = lab.sender();
    const FRAMES: u64 = 200;
    for sequence in 0..FRAMES {
        sender.send(&udp_frame(9000, sequence, 1000));
    }
    let fast_records = drain(&mut fast, Duration::from_millis(300));
    let slow_records = drain(&mut slow, Duration::from_millis(50));
    let fast_counters = attachment.counters(fast.slot()).unwrap();
    let slow_counters = attachment.counters(slow.slot()).unwrap();
    assert_eq!(fast_records.len() as u64, FRAMES);
    assert_eq!(
        (fast_counters.delivered, fast_counters.dropped),
        (FRAMES, 0)
    );
    assert!(slow_counters.dropped > 0, "{slow_counters:?}");
    assert_eq!(slow_counters.delivered + slow_counters.dropped, FRAMES);
    assert_eq!(slow_records.len() as u64, slow_counters.delivered);
}

/// A namespace named by a process is held from the first open: when the
/// process is gone (its name with it), a move between hooks still happens
/// in that very namespace, never in whatever the name means now.
#[test]
fn a_namespace_is_held_from_its_first_open_and_moves_never_name_it_again() {
    let lab = Lab::new();
    let mut holder = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.capture_ns, "sleep", "30"])
        .spawn()
        .expect("a process in the capture namespace");
    std::thread::sleep(Duration::from_millis(200));
    let by_process =
        pktd_daemon::netns::Netns::parse(&format!("/proc/{}/ns/net", holder.id())).unwrap();
    let mut attachment = Attachment::attach(&by_process, &lab.capture_if, Engine::Shared, Hook::Tc)
        .expect("attaching in the process's namespace");
    let mut client = attachment.add_client(&received(), &filter("udp")).unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    attachment
        .move_to_xdp()
        .expect("the move uses the namespace held, not the process's name");
    assert_eq!(attachment.hook(), Hook::Xdp);
    lab.sender().send(&udp_frame(9000, 1, 18));
    assert_eq!(drain(&mut client, Duration::from_millis(300)).len(), 1);
}

/// A move that fails before the hand-over leaves the attachment as it was:
/// at TC, its clients served, its filters replaceable.
#[test]
fn a_failed_move_leaves_the_attachment_as_it_was() {
    let lab = Lab::new();
    // Another program holds the XDP hook: the move cannot attach there.
    let _occupant = Attachment::attach(
        &lab.capture_netns(),
        &lab.capture_if,
        Engine::Shared,
        Hook::Xdp,
    )
    .expect("occupying XDP");
    let mut attachment = Attachment::attach(
        &lab.capture_netns(),
        &lab.capture_if,
        Engine::Shared,
        Hook::Tc,
    )
    .expect("attaching at TC");
    let mut client = attachment
        .add_client(&received(), &filter("udp dst port 9000"))
        .unwrap();
    assert!(attachment.move_to_xdp().is_err(), "XDP is taken");
    assert_eq!(attachment.hook(), Hook::Tc);
    let sender = lab.sender();
    sender.send(&udp_frame(9000, 1, 18));
    sender.send(&udp_frame(9001, 2, 18));
    let got = drain(&mut client, Duration::from_millis(300));
    assert_eq!(got.len(), 1, "still served at TC");
    attachment
        .set_filter(client.slot(), &filter("udp dst port 9001"))
        .expect("the native chain is TC's again");
    sender.send(&udp_frame(9000, 3, 18));
    sender.send(&udp_frame(9001, 4, 18));
    let got = drain(&mut client, Duration::from_millis(300));
    assert_eq!(
        got.iter()
            .map(|record| sequence_and_port(&record.data).1)
            .collect::<Vec<_>>(),
        vec![9001]
    );
}

/// A slot given back is not taken again at once, so that no packet still
/// in flight with its previous occupant's verdict reaches the next one.
#[test]
fn a_slot_given_back_rests_before_it_is_taken_again() {
    let mut attachment =
        Attachment::detached(Engine::Shared, Hook::Tc).expect("loading the kernel program");
    let mut clients = Vec::new();
    for _ in 0..pktd_common::MAX_CLIENTS {
        clients.push(attachment.add_client(&received(), &filter("udp")).unwrap());
    }
    let slot = clients[5].slot();
    attachment.remove_client(slot).unwrap();
    let started = std::time::Instant::now();
    let next = attachment.add_client(&received(), &filter("tcp")).unwrap();
    assert_eq!(next.slot(), slot, "the only free slot");
    let counters = attachment.counters(slot).unwrap();
    assert_eq!(
        (counters.seen, counters.matched, counters.delivered),
        (0, 0, 0),
        "a slot taken again starts with fresh counters"
    );
    assert!(
        started.elapsed() >= pktd_daemon::capture::QUARANTINE,
        "taken again after {:?}",
        started.elapsed()
    );
}
