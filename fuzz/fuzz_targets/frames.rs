//! The protocol's framing and decoding (`pktd_proto::Connection`) on
//! arbitrary bytes: first as what a client sends the daemon (a hello, then
//! requests until the stream ends or breaks), then as what the daemon sends
//! a client (replies).
//!
//! Checked: nothing panics; the heap never grows past what the frame caps
//! allow (`pktd-proto/src/lib.rs`: a frame's buffer is reserved only once
//! its length is checked against the cap, and the decoder is limited to 8
//! bytes per payload byte of the cap); and every message decoded encodes
//! and decodes back to itself.
#![no_main]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
};

use libfuzzer_sys::fuzz_target;
use pktd_proto::{
    Connection, MAX_HELLO_FRAME, MAX_REPLY_FRAME, MAX_REQUEST_FRAME, ProtoError, Reply, Request,
};
use tokio::{io::AsyncRead, runtime::Runtime};

fuzz_target!(|data: &[u8]| {
    let runtime = runtime();
    within_caps(MAX_REQUEST_FRAME, || {
        runtime.block_on(as_client_stream(data));
    });
    within_caps(MAX_REPLY_FRAME, || runtime.block_on(as_daemon_stream(data)));
});

/// The daemon's side: a hello, then requests. A frame that is whole but
/// does not decode leaves the framing intact, so the daemon answers
/// "malformed" and reads on; so does this.
async fn as_client_stream(data: &[u8]) {
    let mut daemon = reader(data);
    match daemon.read_hello().await {
        Ok(Some(hello)) => {
            let _ = hello.check();
            let mut buffer = Connection::new(tokio::io::join(tokio::io::empty(), Vec::new()));
            buffer
                .write_hello(&hello)
                .await
                .expect("a decoded hello encodes");
            let bytes = buffer.into_inner().into_inner().1;
            assert_eq!(
                reader(&bytes).read_hello().await.ok().flatten(),
                Some(hello)
            );
        }
        Ok(None) => return,
        Err(error) if broken(&error) => return,
        Err(_) => {}
    }
    loop {
        match daemon.read_request().await {
            Ok(Some(request)) => round_trip_request(request).await,
            Ok(None) => return,
            Err(error) if broken(&error) => return,
            Err(_) => {}
        }
    }
}

/// The client's side: replies until the stream ends or breaks.
async fn as_daemon_stream(data: &[u8]) {
    let mut client = reader(data);
    loop {
        match client.read_reply().await {
            Ok(Some(reply)) => round_trip_reply(reply).await,
            Ok(None) => return,
            Err(error) if broken(&error) => return,
            Err(_) => {}
        }
    }
}

/// Whether the stream cannot go on after `error` (the framing is lost).
fn broken(error: &ProtoError) -> bool {
    !matches!(
        error,
        ProtoError::Decode { .. } | ProtoError::TrailingBytes { .. }
    )
}

async fn round_trip_request(request: Request) {
    let mut buffer = Connection::new(tokio::io::join(tokio::io::empty(), Vec::new()));
    // A decoded request fits its cap when encoded again: encoding is never
    // longer than the frame it came from.
    buffer
        .write_request(&request)
        .await
        .expect("a decoded request encodes within its cap");
    let bytes = buffer.into_inner().into_inner().1;
    let again = reader(&bytes).read_request().await;
    assert_eq!(again.ok().flatten(), Some(request));
}

async fn round_trip_reply(reply: Reply) {
    let mut buffer = Connection::new(tokio::io::join(tokio::io::empty(), Vec::new()));
    buffer
        .write_reply(&reply)
        .await
        .expect("a decoded reply encodes within its cap");
    let bytes = buffer.into_inner().into_inner().1;
    let again = reader(&bytes).read_reply().await;
    assert_eq!(again.ok().flatten(), Some(reply));
}

/// A connection that reads `data` and discards what is written.
fn reader(data: &[u8]) -> Connection<tokio::io::Join<impl AsyncRead + Unpin, tokio::io::Sink>> {
    Connection::new(tokio::io::join(data, tokio::io::sink()))
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

// The heap, measured: every allocation counted, with the highest total
// since the last reset.

/// What the framing may hold for a cap (`pktd-proto/src/lib.rs`): its read
/// buffer (a 4-byte prefix, the payload, the 8 KiB `READ_CHUNK` offered to
/// each read; a `Vec` may double when it grows) and what the decoder may
/// allocate (`DECODE_LIMIT_FACTOR` = 8 bytes per byte of the cap), plus
/// the round trip's copy of one frame, and 64 KiB for everything else.
fn allowance(cap: usize) -> usize {
    2 * (4 + cap + 8 * 1024) + 8 * cap + (4 + cap) + 64 * 1024
}

/// Runs `work` and checks the heap never grew by more than the allowance of
/// `cap` (requests' cap for the client stream: a hello's is smaller).
fn within_caps(cap: usize, work: impl FnOnce()) {
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    work();
    let grown = PEAK.load(Relaxed).saturating_sub(before);
    assert!(
        grown <= allowance(cap),
        "the heap grew by {grown} bytes reading frames capped at {cap} \
         (allowance {}); hello cap {MAX_HELLO_FRAME}",
        allowance(cap)
    );
}

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // During a move both blocks exist.
        grow(new_size);
        // SAFETY: the caller's contract, passed on.
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if moved.is_null() {
            LIVE.fetch_sub(new_size, Relaxed);
        } else {
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        moved
    }
}

fn grow(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;
