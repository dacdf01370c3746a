//! Framing and message tests over real Unix sockets.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::*;

fn pair() -> (Connection<UnixStream>, Connection<UnixStream>) {
    let (a, b) = UnixStream::pair().expect("socketpair failed");
    (Connection::new(a), Connection::new(b))
}

fn packet(i: u64, len: usize) -> Packet {
    Packet {
        timestamp_ns: 1_700_000_000_000_000_000 + i,
        wire_len: len as u32 + 4,
        direction: if i.is_multiple_of(2) {
            Direction::In
        } else {
            Direction::Out
        },
        data: (0..len).map(|b| (b as u64 + i) as u8).collect(),
    }
}

fn stats() -> Stats {
    Stats {
        received: 1000,
        matched: 500,
        delivered: 490,
        dropped: 7,
        over_quota: 3,
        over_budget: 2,
        interface_packets: Some(123_456),
    }
}

fn all_requests() -> Vec<Request> {
    let open = OpenCapture {
        netns: "/proc/1234/ns/net".into(),
        interface: "eth0".into(),
        direction: Direction::InOut,
        snaplen: 65535,
        headers_only: false,
        filter: FilterSpec::Expression("tcp port 443".into()),
        optimize: true,
        packet_count: 0,
        buffer_bytes: 4 << 20,
        stats_interval_ms: 0,
        immediate: false,
        zero_copy: false,
    };
    let bytecode = FilterSpec::Bytecode(vec![
        WireInsn {
            code: 0x28,
            jt: 0,
            jf: 0,
            k: 12,
        },
        WireInsn {
            code: 0x15,
            jt: 0,
            jf: 1,
            k: 0x800,
        },
        WireInsn {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: u32::MAX,
        },
        WireInsn {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0,
        },
    ]);
    vec![
        Request::StartRecording(RecordingRequest {
            capture: open.clone(),
            pattern: "web-%d.pcap".into(),
            rotation: Rotation {
                seconds: 3600,
                bytes: u64::MAX,
                packets: 0,
                max_files: 24,
            },
            pcapng: true,
        }),
        Request::Open(open.clone()),
        Request::Open(OpenCapture {
            netns: String::new(),
            direction: Direction::Out,
            filter: bytecode.clone(),
            packet_count: u64::MAX,
            immediate: true,
            zero_copy: true,
            ..open
        }),
        Request::SetFilter {
            filter: bytecode,
            optimize: false,
        },
        Request::SetFilter {
            filter: FilterSpec::Expression(String::new()),
            optimize: true,
        },
        Request::Stats,
        Request::Inject {
            netns: "lab".into(),
            interface: "veth0".into(),
            frames: vec![Frame(vec![1, 2, 3]), Frame(Vec::new())],
        },
        Request::DaemonStats,
        Request::ListRecordings,
        Request::StopRecording { id: 3 },
        Request::Close,
        Request::ListInterfaces,
    ]
}

fn all_replies() -> Vec<Reply> {
    let mut replies = vec![
        Reply::HelloAck {
            version: PROTOCOL_VERSION,
            daemon: "pktd 0.1".into(),
        },
        Reply::Opened {
            session_id: u64::MAX,
            link_type: 1,
            snaplen: 262_144,
            headers_only: false,
            daemon_path: None,
            ring_bytes: 1 << 30,
        },
        Reply::Opened {
            session_id: 1,
            link_type: 1,
            snaplen: 96,
            headers_only: true,
            daemon_path: Some("anonymized".into()),
            ring_bytes: 0,
        },
        Reply::Packets(Vec::new()),
        Reply::Packets((0..50).map(|i| packet(i, i as usize * 30)).collect()),
        Reply::FilterSet,
        Reply::Recordings(vec![RecordingInfo {
            id: 1,
            uid: 2,
            pattern: "a-%d.pcap".into(),
            directory: "/var/lib/pktd".into(),
            files: vec!["a-0.pcap".into()],
            packets: 3,
            bytes: 4,
            ended: Some(EndReason::Stopped),
        }]),
        Reply::DaemonStats(DaemonStats {
            time_ns: 5,
            interfaces: vec![InterfaceStats {
                netns: "lab".into(),
                interface: "veth0".into(),
                packets: 1,
                bytes: 2,
                tcp_syn: 3,
                tcp_synack: 4,
                sessions: 5,
            }],
            sessions: vec![SessionStats {
                id: 1,
                uid: 2,
                pid: 3,
                netns: String::new(),
                interface: "lo".into(),
                stats: Stats::default(),
            }],
        }),
        Reply::Interval(Interval {
            start_ns: 1,
            end_ns: 2,
            packets: 3,
            bytes: 4,
        }),
        Reply::Injected(vec![
            InjectVerdict::Sent,
            InjectVerdict::Refused("spoofed".into()),
        ]),
        Reply::Stats(stats()),
    ];
    replies.extend(ErrorCode::ALL.map(|code| Reply::Error {
        code,
        message: format!("{code} happened"),
    }));
    for reason in [
        EndReason::CountReached,
        EndReason::Closed,
        EndReason::PacketQuota,
        EndReason::ByteQuota,
        EndReason::PolicyRevoked,
        EndReason::DaemonShutdown,
        EndReason::Error("ring vanished".into()),
    ] {
        replies.push(Reply::End {
            reason,
            stats: stats(),
        });
    }
    replies.push(Reply::Interfaces(Vec::new()));
    replies.push(Reply::Interfaces(vec![
        InterfaceInfo {
            netns: String::new(),
            name: "lo".into(),
            index: 1,
            up: true,
            running: true,
            loopback: true,
        },
        InterfaceInfo {
            netns: "lab".into(),
            name: "veth0".into(),
            index: 7,
            up: false,
            running: false,
            loopback: false,
        },
    ]));
    replies
}

/// Writes a raw frame: `prefix` as the length, then `payload`.
async fn write_raw(stream: &mut UnixStream, prefix: u32, payload: &[u8]) {
    stream
        .write_all(&prefix.to_be_bytes())
        .await
        .expect("writing prefix failed");
    stream
        .write_all(payload)
        .await
        .expect("writing payload failed");
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encoding failed")
}

#[tokio::test]
async fn every_request_round_trips() {
    let (mut client, mut daemon) = pair();
    for request in all_requests() {
        client
            .write_request(&request)
            .await
            .expect("write_request failed");
        let got = daemon.read_request().await.expect("read_request failed");
        assert_eq!(got.as_ref(), Some(&request), "request changed in transit");
    }
}

#[tokio::test]
async fn every_reply_round_trips() {
    let (mut client, mut daemon) = pair();
    let replies = all_replies();
    // Write everything before reading anything, so that several frames sit
    // in the reader's buffer at once.
    let writer = async {
        for reply in &replies {
            daemon.write_reply(reply).await.expect("write_reply failed");
        }
        drop(daemon);
    };
    let reader = async {
        let mut got = Vec::new();
        while let Some(reply) = client.read_reply().await.expect("read_reply failed") {
            got.push(reply);
        }
        got
    };
    let ((), got) = tokio::join!(writer, reader);
    assert_eq!(got, replies, "replies changed in transit");
}

#[tokio::test]
async fn hello_round_trips_and_checks() {
    let (mut client, mut daemon) = pair();
    let hello = Hello::new("pktcap 0.1");
    assert_eq!(hello.magic, MAGIC, "Hello::new must set the magic");
    assert_eq!(
        hello.version, PROTOCOL_VERSION,
        "Hello::new must set the version"
    );
    client
        .write_hello(&hello)
        .await
        .expect("write_hello failed");
    let got = daemon
        .read_hello()
        .await
        .expect("read_hello failed")
        .expect("no hello");
    assert_eq!(got, hello, "hello changed in transit");
    assert_eq!(got.check(), Ok(()), "a fresh hello must pass its check");

    let bad_magic = Hello {
        magic: *b"HTTP",
        ..hello.clone()
    };
    assert_eq!(
        bad_magic.check(),
        Err(ErrorCode::BadHello),
        "wrong magic must be refused"
    );
    let future = Hello {
        version: PROTOCOL_VERSION + 1,
        ..hello.clone()
    };
    assert_eq!(
        future.check(),
        Err(ErrorCode::UnsupportedVersion),
        "wrong version must be refused"
    );

    let huge = Hello::new("x".repeat(MAX_HELLO_FRAME));
    match client.write_hello(&huge).await {
        Err(ProtoError::TooLarge { max, .. }) => assert_eq!(max, MAX_HELLO_FRAME, "hello cap"),
        other => panic!("an oversized hello must be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn clean_eof_between_frames_is_none() {
    let (mut client, mut daemon) = pair();
    assert!(
        client.get_ref().peer_addr().is_ok(),
        "get_ref must expose the stream"
    );
    client
        .write_request(&Request::Stats)
        .await
        .expect("write_request failed");
    drop(client);
    assert_eq!(
        daemon.read_request().await.expect("read_request failed"),
        Some(Request::Stats),
        "the frame before EOF must be read"
    );
    assert_eq!(
        daemon
            .read_request()
            .await
            .expect("EOF at a boundary must not be an error"),
        None,
        "EOF at a boundary must read as None"
    );
    // And it stays at EOF.
    assert_eq!(
        daemon
            .read_request()
            .await
            .expect("second read at EOF failed"),
        None,
        "EOF twice"
    );
}

#[tokio::test]
async fn eof_inside_payload_is_truncated() {
    let (a, b) = UnixStream::pair().expect("socketpair failed");
    let mut raw = a;
    let mut daemon = Connection::new(b);
    write_raw(&mut raw, 100, &[0; 10]).await;
    drop(raw);
    match daemon.read_request().await {
        Err(ProtoError::Truncated { needed, got }) => {
            assert_eq!(
                (needed, got),
                (104, 14),
                "truncation must report frame and received sizes"
            )
        }
        other => panic!("EOF inside a payload must be Truncated, got {other:?}"),
    }
}

#[tokio::test]
async fn eof_inside_prefix_is_truncated() {
    let (mut raw, b) = UnixStream::pair().expect("socketpair failed");
    let mut daemon = Connection::new(b);
    raw.write_all(&[0, 0]).await.expect("write failed");
    drop(raw);
    match daemon.read_request().await {
        Err(ProtoError::Truncated { needed, got }) => {
            assert_eq!((needed, got), (4, 2), "truncation inside the prefix")
        }
        other => panic!("EOF inside a prefix must be Truncated, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_prefix_is_refused_before_allocating() {
    let (mut raw, b) = UnixStream::pair().expect("socketpair failed");
    let mut daemon = Connection::new(b);
    // Keep `raw` open: the error must come from the prefix alone, not from
    // waiting for (or failing to get) the payload.
    raw.write_all(&u32::MAX.to_be_bytes())
        .await
        .expect("write failed");
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(1), daemon.read_request())
        .await
        .expect("an oversized prefix must be refused without waiting for its payload");
    match result {
        Err(ProtoError::TooLarge { len, max }) => {
            assert_eq!(len, u32::MAX as usize, "reported length");
            assert_eq!(max, MAX_REQUEST_FRAME, "reported limit");
        }
        other => panic!("an oversized prefix must be TooLarge, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "refusal took {:?}",
        start.elapsed()
    );
    assert!(
        daemon.buffer.capacity() <= 2 * READ_CHUNK,
        "buffer grew to {} bytes for a refused frame",
        daemon.buffer.capacity()
    );
}

#[tokio::test]
async fn caps_are_exact() {
    let (mut raw, b) = UnixStream::pair().expect("socketpair failed");
    let mut conn = Connection::new(b);

    // One byte over each cap is refused...
    raw.write_all(&(MAX_REQUEST_FRAME as u32 + 1).to_be_bytes())
        .await
        .expect("write failed");
    match conn.read_request().await {
        Err(ProtoError::TooLarge { len, max }) => {
            assert_eq!(
                (len, max),
                (MAX_REQUEST_FRAME + 1, MAX_REQUEST_FRAME),
                "request cap"
            )
        }
        other => panic!("request one byte over the cap must be TooLarge, got {other:?}"),
    }
    let (mut raw, b) = UnixStream::pair().expect("socketpair failed");
    let mut conn = Connection::new(b);
    raw.write_all(&(MAX_REPLY_FRAME as u32 + 1).to_be_bytes())
        .await
        .expect("write failed");
    match conn.read_reply().await {
        Err(ProtoError::TooLarge { len, max }) => {
            assert_eq!(
                (len, max),
                (MAX_REPLY_FRAME + 1, MAX_REPLY_FRAME),
                "reply cap"
            )
        }
        other => panic!("reply one byte over the cap must be TooLarge, got {other:?}"),
    }
    // ...and a caller's larger max_len is clamped to MAX_FRAME.
    let (mut raw, b) = UnixStream::pair().expect("socketpair failed");
    let mut conn = Connection::new(b);
    raw.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
        .await
        .expect("write failed");
    match conn.read_frame::<Reply>(usize::MAX).await {
        Err(ProtoError::TooLarge { max, .. }) => assert_eq!(max, MAX_FRAME, "clamped limit"),
        other => panic!("frames over MAX_FRAME must be TooLarge, got {other:?}"),
    }

    // A request of exactly the cap is accepted.
    let (mut client, mut daemon) = pair();
    let base = Request::SetFilter {
        filter: FilterSpec::Expression(String::new()),
        optimize: false,
    };
    let base_len = encode(&base).len();
    // The string's length varint grows from 1 to 5 bytes past 65535.
    let text = "a".repeat(MAX_REQUEST_FRAME - base_len - 4);
    let exact = Request::SetFilter {
        filter: FilterSpec::Expression(text),
        optimize: false,
    };
    assert_eq!(
        encode(&exact).len(),
        MAX_REQUEST_FRAME,
        "test setup: frame must be exactly at the cap"
    );
    let (written, read) = tokio::join!(client.write_request(&exact), daemon.read_request());
    written.expect("a request exactly at the cap must be written");
    assert_eq!(
        read.expect("a request exactly at the cap must be read"),
        Some(exact),
        "cap-sized request"
    );
}

#[tokio::test]
async fn garbage_payload_is_decode_error_and_stream_stays_in_sync() {
    let (mut raw, b) = UnixStream::pair().expect("socketpair failed");
    let mut daemon = Connection::new(b);
    write_raw(&mut raw, 16, &[0xFF; 16]).await;
    let valid = encode(&Request::Close);
    write_raw(&mut raw, valid.len() as u32, &valid).await;
    match daemon.read_request().await {
        Err(ProtoError::Decode { message }) => {
            assert!(!message.is_empty(), "decode error needs a message")
        }
        other => panic!("a garbage payload must be a Decode error, got {other:?}"),
    }
    assert_eq!(
        daemon
            .read_request()
            .await
            .expect("the frame after a bad one must read"),
        Some(Request::Close),
        "a bad frame must be consumed whole"
    );
}

#[tokio::test]
async fn trailing_bytes_are_their_own_error() {
    let (mut raw, b) = UnixStream::pair().expect("socketpair failed");
    let mut daemon = Connection::new(b);
    let mut payload = encode(&Request::Stats);
    let used = payload.len();
    payload.extend_from_slice(&[0, 0, 0]);
    write_raw(&mut raw, payload.len() as u32, &payload).await;
    match daemon.read_request().await {
        Err(ProtoError::TrailingBytes {
            len,
            used: got_used,
        }) => {
            assert_eq!((len, got_used), (used + 3, used), "trailing-bytes sizes")
        }
        other => panic!("trailing bytes must be TrailingBytes, got {other:?}"),
    }
}

#[tokio::test]
async fn inner_lengths_cannot_force_huge_allocations() {
    // A hello whose client string claims 2^40 bytes inside a 16-byte frame.
    // Without a decode limit bincode would allocate the string before noticing
    // the payload is short (and abort the process if it cannot).
    let mut payload = MAGIC.to_vec();
    payload.push(1); // version, varint
    payload.push(253); // varint marker: u64 follows
    payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let (mut raw, b) = UnixStream::pair().expect("socketpair failed");
    let mut daemon = Connection::new(b);
    write_raw(&mut raw, payload.len() as u32, &payload).await;
    match daemon.read_hello().await {
        Err(ProtoError::Decode { .. }) => {}
        other => panic!("a hostile inner length must be a Decode error, got {other:?}"),
    }
}

#[tokio::test]
async fn write_frame_refuses_over_cap_and_writes_nothing() {
    let (mut client, mut daemon) = pair();
    let huge = Request::SetFilter {
        filter: FilterSpec::Expression("x".repeat(MAX_REQUEST_FRAME)),
        optimize: false,
    };
    match client.write_request(&huge).await {
        Err(ProtoError::TooLarge { len, max }) => {
            assert_eq!(
                len,
                encode(&huge).len(),
                "reported length must be the exact encoding"
            );
            assert_eq!(max, MAX_REQUEST_FRAME, "reported limit");
        }
        other => panic!("an over-cap request must be refused, got {other:?}"),
    }
    // The connection is still usable, and the refused frame left no bytes.
    client
        .write_request(&Request::Close)
        .await
        .expect("write after refusal failed");
    drop(client);
    assert_eq!(
        daemon.read_request().await.expect("read failed"),
        Some(Request::Close),
        "first frame"
    );
    assert_eq!(
        daemon.read_request().await.expect("read failed"),
        None,
        "nothing else was written"
    );
}

/// Writes `frame` in two parts split at `split`, pausing in between, while
/// the reader polls it inside `select!` against a faster timer.
async fn read_split_frame(split: usize) {
    let (mut raw, b) = UnixStream::pair().expect("socketpair failed");
    let mut daemon = Connection::new(b);
    let request = all_requests().remove(0);
    let payload = encode(&request);
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);

    let writer = async move {
        raw.write_all(&frame[..split])
            .await
            .expect("first half failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
        raw.write_all(&frame[split..])
            .await
            .expect("second half failed");
        raw
    };
    let reader = async {
        let mut ticks = 0;
        let result = loop {
            tokio::select! {
                result = daemon.read_request() => break result,
                _ = tokio::time::sleep(Duration::from_millis(10)) => ticks += 1,
            }
        };
        (result, ticks)
    };
    let (_raw, (result, ticks)) = tokio::join!(writer, reader);
    assert!(
        ticks > 0,
        "the timer never fired between halves (split at {split})"
    );
    assert_eq!(
        result.expect("a frame read across cancelled reads must parse"),
        Some(request),
        "frame split at {split} changed"
    );
}

#[tokio::test]
async fn read_is_cancel_safe_inside_payload() {
    read_split_frame(20).await;
}

#[tokio::test]
async fn read_is_cancel_safe_inside_prefix() {
    read_split_frame(2).await;
}

fn refs(packets: &[Packet]) -> impl Iterator<Item = PacketRef<'_>> + Clone {
    packets.iter().map(|p| PacketRef {
        timestamp_ns: p.timestamp_ns,
        wire_len: p.wire_len,
        direction: p.direction,
        data: &p.data,
    })
}

/// `packets` through [`encode_packets`], the frames split again: each
/// frame's packets, after checking that its bytes are bincode's own
/// encoding of them and within `max_frame`.
fn encoded_batches(packets: &[Packet], max_frame: usize) -> Vec<Vec<Packet>> {
    let mut out = vec![0xee; 3]; // appended to, never overwritten
    let frames = encode_packets(refs(packets), max_frame, &mut out).expect("encodes");
    assert_eq!(&out[..3], &[0xee; 3], "existing bytes kept");
    let mut rest = &out[3..];
    let mut batches = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(len <= max_frame, "frame of {len} bytes over {max_frame}");
        let payload = &rest[4..4 + len];
        let reply: Reply = decode_payload(payload, MAX_REPLY_FRAME).expect("decodes");
        assert_eq!(payload, encode(&reply), "not bincode's encoding");
        let Reply::Packets(batch) = reply else {
            panic!("not Reply::Packets: {reply:?}");
        };
        assert!(!batch.is_empty(), "an empty frame");
        batches.push(batch);
        rest = &rest[4 + len..];
    }
    assert_eq!(batches.len(), frames, "frames counted");
    batches
}

#[test]
fn encoded_packets_fill_frames_up_to_the_cap() {
    let max_frame = 64 * 1024;
    let packets: Vec<Packet> = (0..2000)
        .map(|i| packet(i, (i as usize * 37) % 1600))
        .collect();
    let batches = encoded_batches(&packets, max_frame);
    assert!(
        batches.len() > 1,
        "test setup: input must need several frames"
    );
    let mut flattened: Vec<Packet> = Vec::new();
    for (n, batch) in batches.iter().enumerate() {
        // Greedy: the next packet would not have fit.
        if let Some(next) = packets.get(flattened.len() + batch.len()) {
            let mut bigger = batch.clone();
            bigger.push(next.clone());
            let bigger_len = encode(&Reply::Packets(bigger)).len();
            assert!(
                bigger_len > max_frame,
                "frame {n} stopped early: {bigger_len} would fit"
            );
        }
        flattened.extend(batch.iter().cloned());
    }
    assert_eq!(
        flattened, packets,
        "encoding must keep every packet, in order"
    );
}

#[test]
fn encoded_packets_edge_cases() {
    let mut out = Vec::new();
    assert_eq!(
        encode_packets(refs(&[]), MAX_REPLY_FRAME, &mut out).unwrap(),
        0,
        "no packets, no frames"
    );
    assert!(out.is_empty());

    // Full-size packets at the real cap: ~31 per frame.
    let big: Vec<Packet> = (0..100).map(|i| packet(i, 262_144)).collect();
    let count: usize = encoded_batches(&big, MAX_REPLY_FRAME)
        .iter()
        .map(Vec::len)
        .sum();
    assert_eq!(count, big.len(), "full-size packets lost");

    // Frame sizes cross the count varint's 1 -> 3 byte step (251 packets).
    let tiny: Vec<Packet> = (0..1000).map(|i| packet(i, 0)).collect();
    let one_batch_len = encode(&Reply::Packets(tiny.clone())).len();
    for max_frame in [one_batch_len, one_batch_len - 1, 251 * 13, 251 * 13 + 2] {
        let count: usize = encoded_batches(&tiny, max_frame).iter().map(Vec::len).sum();
        assert_eq!(count, tiny.len(), "a {max_frame}-byte cap lost packets");
    }
    assert_eq!(
        encoded_batches(&tiny, one_batch_len).len(),
        1,
        "exact fit must be one frame"
    );

    // Every varint width, in every field.
    let widths = [
        0u64,
        250,
        251,
        0xffff,
        0x1_0000,
        0xffff_ffff,
        0x1_0000_0000,
        u64::MAX,
    ];
    let odd: Vec<Packet> = widths
        .iter()
        .flat_map(|&ts| {
            [0u32, 250, 251, 0xffff, 0x1_0000, u32::MAX].map(|wire_len| Packet {
                timestamp_ns: ts,
                wire_len,
                direction: Direction::InOut,
                data: vec![7; (ts % 300) as usize],
            })
        })
        .collect();
    assert_eq!(encoded_batches(&odd, MAX_REPLY_FRAME).concat(), odd);

    // A packet that cannot fit alone is refused, after the frames before it.
    let mut out = Vec::new();
    let err = encode_packets(
        refs(&[packet(0, 10), packet(1, 100), packet(2, 10)]),
        50,
        &mut out,
    )
    .unwrap_err();
    assert!(
        matches!(err, ProtoError::TooLarge { max: 50, .. }),
        "{err:?}"
    );
    assert!(!out.is_empty(), "the first frame is kept");
}

#[test]
fn the_packets_variant_is_where_the_encoder_says() {
    let bytes = encode(&Reply::Packets(Vec::new()));
    assert_eq!(bytes, [packets::PACKETS_VARIANT as u8, 0]);
}

#[tokio::test]
async fn encoded_packets_travel_as_replies() {
    let (mut client, mut daemon) = pair();
    let packets: Vec<Packet> = (0..40).map(|i| packet(i, 262_144)).collect();
    let mut frames = Vec::new();
    encode_packets(refs(&packets), MAX_REPLY_FRAME, &mut frames).unwrap();
    let writer = async {
        daemon
            .write_encoded(&frames)
            .await
            .expect("writing the frames failed");
        drop(daemon);
    };
    let reader = async {
        let mut got = Vec::new();
        while let Some(reply) = client.read_reply().await.expect("reading a frame failed") {
            match reply {
                Reply::Packets(p) => got.extend(p),
                other => panic!("expected packets, got {other:?}"),
            }
        }
        got
    };
    let ((), got) = tokio::join!(writer, reader);
    assert_eq!(got, packets, "packets changed in transit");
}

#[test]
fn packet_data_encodes_like_a_plain_vec() {
    #[derive(Serialize)]
    struct Plain {
        timestamp_ns: u64,
        wire_len: u32,
        direction: Direction,
        data: Vec<u8>,
    }
    let p = packet(3, 300);
    let plain = Plain {
        timestamp_ns: p.timestamp_ns,
        wire_len: p.wire_len,
        direction: p.direction,
        data: p.data.clone(),
    };
    assert_eq!(
        encode(&p),
        encode(&plain),
        "byte_buf must not change the wire format"
    );
}

#[test]
fn insn_converts_both_ways() {
    let kernel = pktd_common::CbpfInsn::new(0x15, 3, 7, 0x86dd);
    let wire = WireInsn::from(kernel);
    assert_eq!(
        wire,
        WireInsn {
            code: 0x15,
            jt: 3,
            jf: 7,
            k: 0x86dd
        },
        "CbpfInsn -> WireInsn"
    );
    assert_eq!(
        pktd_common::CbpfInsn::from(wire),
        kernel,
        "WireInsn -> CbpfInsn"
    );
}

#[test]
fn error_codes_are_stable() {
    let expected = [
        (ErrorCode::BadHello, 1, "bad_hello"),
        (ErrorCode::UnsupportedVersion, 2, "unsupported_version"),
        (ErrorCode::Malformed, 3, "malformed"),
        (ErrorCode::OutOfOrder, 4, "out_of_order"),
        (ErrorCode::Denied, 5, "denied"),
        (ErrorCode::InvalidFilter, 6, "invalid_filter"),
        (ErrorCode::NoSuchInterface, 7, "no_such_interface"),
        (ErrorCode::NoSuchNetns, 8, "no_such_netns"),
        (ErrorCode::Limit, 9, "limit"),
        (ErrorCode::Internal, 10, "internal"),
    ];
    assert_eq!(
        ErrorCode::ALL.len(),
        expected.len(),
        "ALL must list every code"
    );
    for (index, (code, number, name)) in expected.into_iter().enumerate() {
        assert_eq!(ErrorCode::ALL[index], code, "ALL is in declaration order");
        assert_eq!(code.code(), number, "{code:?} number changed");
        assert_eq!(code.to_string(), name, "{code:?} name changed");
        assert_eq!(
            ErrorCode::from_code(number),
            Some(code),
            "from_code({number})"
        );
        // The wire carries the declaration index; pin it too.
        assert_eq!(
            encode(&code),
            vec![index as u8],
            "{code:?} wire index changed"
        );
    }
    assert_eq!(ErrorCode::from_code(0), None, "0 is no code");
    assert_eq!(ErrorCode::from_code(11), None, "11 is no code");
}

#[test]
fn end_reasons_read_well() {
    assert_eq!(
        EndReason::Closed.to_string(),
        "closed by the client",
        "Closed text"
    );
    assert_eq!(
        EndReason::Error("ring vanished".into()).to_string(),
        "failed: ring vanished",
        "Error text"
    );
}
