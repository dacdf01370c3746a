//! A capture handle (`struct wire`): its settings until it is activated,
//! then its blocking capture, injector, last error and last packet.

use std::{
    cell::UnsafeCell,
    ffi::CString,
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use libwire::{
    CaptureBuilder, Direction, ErrorCode, InjectVerdict,
    blocking::{Capture, Injector, Next},
};

use crate::{
    WIRE_ERROR, WIRE_ERROR_ACTIVATED, WIRE_ERROR_BREAK, WIRE_ERROR_NOT_ACTIVATED,
    WIRE_ERROR_PERM_DENIED, WirePkthdr, WireStat,
};

/// What `struct wire` points to. Used by one thread at a time (the
/// header says so), except `breaking`, which `wire_breakloop` sets from
/// any thread or a signal handler.
pub struct Wire {
    state: UnsafeCell<State>,
    breaking: AtomicBool,
}

// SAFETY: `state` is only reached through `Wire::state`, whose callers
// (the C functions) are used by one thread at a time per handle, as the
// header documents; `breaking` is atomic.
unsafe impl Sync for Wire {}

struct State {
    interface: String,
    netns: String,
    socket: PathBuf,
    /// Until activated.
    builder: Option<CaptureBuilder>,
    capture: Option<Capture>,
    injector: Option<Injector>,
    timeout: Duration,
    nonblock: bool,
    ended: bool,
    error: CString,
    /// What `wire_next_ex` hands out, valid until the next call.
    header: WirePkthdr,
    data: Vec<u8>,
}

impl Wire {
    pub fn new(interface: String) -> Self {
        Self {
            state: UnsafeCell::new(State {
                builder: Some(CaptureBuilder::new(&interface)),
                interface,
                netns: String::new(),
                socket: PathBuf::from(libwire::DEFAULT_SOCKET),
                capture: None,
                injector: None,
                timeout: libwire::DEFAULT_TIMEOUT,
                nonblock: false,
                ended: false,
                error: CString::default(),
                header: WirePkthdr::default(),
                data: Vec::new(),
            }),
            breaking: AtomicBool::new(false),
        }
    }

    #[allow(clippy::mut_from_ref)]
    fn state(&self) -> &mut State {
        // SAFETY: see `unsafe impl Sync`: one thread at a time uses the
        // state, and no reference to it outlives a C call.
        unsafe { &mut *self.state.get() }
    }

    /// The last error's message.
    pub fn error(&self) -> &CString {
        &self.state().error
    }

    fn fail(&self, code: i32, message: impl std::fmt::Display) -> i32 {
        let text = message.to_string().replace('\0', " ");
        self.state().error = CString::new(text).unwrap_or_default();
        code
    }

    fn failure(&self, err: &libwire::Error) -> i32 {
        let code = match err {
            libwire::Error::Daemon {
                code: ErrorCode::Denied,
                ..
            } => WIRE_ERROR_PERM_DENIED,
            _ => WIRE_ERROR,
        };
        self.fail(code, err)
    }

    /// Changes a setting before activation.
    pub fn set(&self, change: impl FnOnce(CaptureBuilder) -> CaptureBuilder) -> i32 {
        let state = self.state();
        match state.builder.take() {
            Some(builder) => {
                state.builder = Some(change(builder));
                0
            }
            None => self.fail(WIRE_ERROR_ACTIVATED, "the capture is already active"),
        }
    }

    pub fn set_socket(&self, socket: String) -> i32 {
        self.state().socket = PathBuf::from(&socket);
        self.set(|builder| builder.socket(socket))
    }

    pub fn set_netns(&self, netns: String) -> i32 {
        self.state().netns = netns.clone();
        self.set(|builder| builder.netns(netns))
    }

    pub fn set_timeout(&self, timeout: Duration) -> i32 {
        self.state().timeout = timeout;
        self.set(|builder| builder.timeout(timeout))
    }

    pub fn set_nonblock(&self, nonblock: bool) -> i32 {
        self.state().nonblock = nonblock;
        0
    }

    pub fn nonblock(&self) -> bool {
        self.state().nonblock
    }

    pub fn activate(&self) -> i32 {
        let state = self.state();
        let Some(builder) = state.builder.take() else {
            return self.fail(WIRE_ERROR_ACTIVATED, "the capture is already active");
        };
        match Capture::open(builder) {
            Ok(capture) => {
                state.capture = Some(capture);
                0
            }
            Err(err) => self.failure(&err),
        }
    }

    fn capture(&self) -> Result<&mut Capture, i32> {
        match self.state().capture.as_mut() {
            Some(capture) => Ok(capture),
            None => Err(self.fail(WIRE_ERROR_NOT_ACTIVATED, "the capture is not active")),
        }
    }

    pub fn set_filter(&self, expression: &str, optimize: bool) -> i32 {
        let capture = match self.capture() {
            Ok(capture) => capture,
            Err(code) => return code,
        };
        match capture.set_filter(expression, optimize) {
            Ok(()) => 0,
            Err(err) => self.failure(&err),
        }
    }

    fn wait(&self) -> Duration {
        if self.state().nonblock {
            Duration::ZERO
        } else {
            self.state().timeout
        }
    }

    /// `wire_next_ex`: 1 and the packet, 0 on timeout, WIRE_ERROR_BREAK
    /// at the end, WIRE_ERROR on failure.
    pub fn next_ex(&self) -> (i32, Option<(*const WirePkthdr, *const u8)>) {
        let wait = self.wait();
        let state = self.state();
        let capture = match self.capture() {
            Ok(capture) => capture,
            Err(code) => return (code, None),
        };
        match capture.next_packet_within(wait) {
            Ok(Next::Packet(packet)) => {
                state.data.clear();
                state.data.extend_from_slice(packet.data());
                state.header = header(&packet);
                (1, Some((&state.header, state.data.as_ptr())))
            }
            Ok(Next::Timeout) => (0, None),
            Ok(Next::End) => {
                state.ended = true;
                (WIRE_ERROR_BREAK, None)
            }
            Err(err) => (self.failure(&err), None),
        }
    }

    /// `wire_dispatch`: at most `count` packets (all there are for 0 or
    /// less) to `each`, waiting for the first at most the timeout.
    pub fn dispatch(&self, count: i32, mut each: impl FnMut(&WirePkthdr, &[u8])) -> i32 {
        let first_wait = self.wait();
        let capture = match self.capture() {
            Ok(capture) => capture,
            Err(code) => return code,
        };
        let limit = if count <= 0 { u64::MAX } else { count as u64 };
        let mut done = 0u64;
        while done < limit {
            if self.breaking.swap(false, Ordering::AcqRel) {
                return if done == 0 {
                    WIRE_ERROR_BREAK
                } else {
                    done as i32
                };
            }
            let wait = if done == 0 {
                first_wait
            } else {
                Duration::ZERO
            };
            match capture.next_packet_within(wait) {
                Ok(Next::Packet(packet)) => {
                    each(&header(&packet), packet.data());
                    done += 1;
                }
                Ok(Next::Timeout) => break,
                Ok(Next::End) => {
                    self.state().ended = true;
                    break;
                }
                Err(err) => return self.failure(&err),
            }
        }
        done.min(i32::MAX as u64) as i32
    }

    /// `wire_loop`: dispatches until `count` packets (forever for 0 or
    /// less), the end (0), a break (WIRE_ERROR_BREAK) or an error.
    pub fn run(&self, count: i32, mut each: impl FnMut(&WirePkthdr, &[u8])) -> i32 {
        let mut left = if count <= 0 { None } else { Some(count) };
        loop {
            let batch = left.unwrap_or(0);
            let done = self.dispatch(batch, &mut each);
            if done < 0 {
                return done;
            }
            if let Some(left) = left.as_mut() {
                *left -= done;
                if *left <= 0 {
                    return 0;
                }
            }
            if self.state().ended {
                return 0;
            }
        }
    }

    pub fn breakloop(&self) {
        self.breaking.store(true, Ordering::Release);
    }

    pub fn selectable_fd(&self) -> i32 {
        match self.state().capture.as_ref() {
            Some(capture) => std::os::fd::AsRawFd::as_raw_fd(capture),
            None => -1,
        }
    }

    pub fn stats(&self) -> Result<WireStat, i32> {
        let capture = self.capture()?;
        match capture.stats() {
            Ok(stats) => Ok(WireStat {
                received: stats.received,
                matched: stats.matched,
                delivered: stats.delivered,
                dropped: stats.dropped,
                over_quota: stats.over_quota,
            }),
            Err(err) => Err(self.failure(&err)),
        }
    }

    /// Sends `frames` on the handle's interface; how many went out (an
    /// error says why the first refused one was).
    pub fn inject(&self, frames: &[Vec<u8>]) -> i32 {
        let state = self.state();
        if state.injector.is_none() {
            match Injector::open(&state.socket, &state.netns, &state.interface) {
                Ok(injector) => state.injector = Some(injector),
                Err(err) => return self.failure(&err),
            }
        }
        let injector = state.injector.as_mut().expect("opened above");
        match injector.inject(frames) {
            Ok(verdicts) => {
                let mut sent = 0;
                for verdict in &verdicts {
                    match verdict {
                        InjectVerdict::Sent => sent += 1,
                        InjectVerdict::Refused(reason) if sent == 0 => {
                            return self.fail(WIRE_ERROR, format!("refused: {reason}"));
                        }
                        InjectVerdict::Refused(reason) => {
                            self.fail(WIRE_ERROR, format!("refused: {reason}"));
                        }
                    }
                }
                sent
            }
            Err(err) => self.failure(&err),
        }
    }

    pub fn close(self) {
        let state = self.state.into_inner();
        if let Some(capture) = state.capture {
            let _ = capture.close();
        }
    }
}

/// The C header of a packet.
fn header(packet: &libwire::PacketRef<'_>) -> WirePkthdr {
    WirePkthdr {
        ts_ns: packet.timestamp_ns(),
        caplen: packet.data().len() as u32,
        len: packet.wire_len(),
        direction: match packet.direction() {
            Direction::In => crate::WIRE_D_IN,
            Direction::Out => crate::WIRE_D_OUT,
            Direction::InOut => crate::WIRE_D_INOUT,
        },
    }
}
