//! A capture handle (`struct wire`): its settings until it is activated,
//! then its blocking capture, injector, last error and last packet.

use std::{
    cell::UnsafeCell,
    ffi::{CString, c_char},
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use libwire::{
    CaptureBuilder, CbpfInsn, Direction, ErrorCode, InjectVerdict,
    blocking::{Capture, Injector, Next},
};

use crate::{
    WIRE_D_IN, WIRE_D_INOUT, WIRE_D_OUT, WIRE_ERROR, WIRE_ERROR_ACTIVATED, WIRE_ERROR_BREAK,
    WIRE_ERROR_NOT_ACTIVATED, WIRE_ERROR_PERM_DENIED, WirePkthdr, WireStat,
};

/// Longest a wait goes without looking for `wire_breakloop`.
const BREAK_CHECK: Duration = Duration::from_millis(50);

/// What `struct wire` points to. Its state is reached through
/// [`Wire::enter`], one call at a time; `breaking` is set by
/// `wire_breakloop` from any thread or a signal handler.
pub struct Wire {
    state: UnsafeCell<State>,
    breaking: AtomicBool,
    /// A call is under way on the handle: another one (from a packet
    /// callback, or a second thread) is refused rather than let alias its
    /// state.
    busy: AtomicBool,
}

// SAFETY: `state` is only reached through `Wire::enter`, which `busy`
// admits one at a time, and `Wire::error` outside any call; the flags are
// atomic.
unsafe impl Sync for Wire {}

/// A handle's state.
pub struct State {
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
            busy: AtomicBool::new(false),
        }
    }

    /// Runs `body` with the handle's state, one call at a time: a nested
    /// call (from a packet callback) fails with WIRE_ERROR.
    pub fn enter(&self, body: impl FnOnce(&mut State, &AtomicBool) -> i32) -> i32 {
        if self.busy.swap(true, Ordering::Acquire) {
            return WIRE_ERROR;
        }
        struct Leave<'a>(&'a AtomicBool);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _leave = Leave(&self.busy);
        // SAFETY: `busy` admits one call at a time, and the reference does
        // not outlive it.
        let state = unsafe { &mut *self.state.get() };
        body(state, &self.breaking)
    }

    /// The last error's message (a fixed text during another call).
    pub fn error(&self) -> *const c_char {
        if self.busy.load(Ordering::Acquire) {
            return c"wire_geterr called during another call on the handle".as_ptr();
        }
        // SAFETY: no call is under way (one thread at a time per handle,
        // as the header says), and only a pointer leaves.
        unsafe { (*self.state.get()).error.as_ptr() }
    }

    pub fn breakloop(&self) {
        self.breaking.store(true, Ordering::Release);
    }

    pub fn close(self) {
        let state = self.state.into_inner();
        if let Some(capture) = state.capture {
            let _ = capture.close();
        }
    }
}

impl State {
    fn fail(&mut self, code: i32, message: impl std::fmt::Display) -> i32 {
        let text = message.to_string().replace('\0', " ");
        self.error = CString::new(text).unwrap_or_default();
        code
    }

    fn failure(&mut self, err: &libwire::Error) -> i32 {
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
    pub fn set(&mut self, change: impl FnOnce(CaptureBuilder) -> CaptureBuilder) -> i32 {
        match self.builder.take() {
            Some(builder) => {
                self.builder = Some(change(builder));
                0
            }
            None => self.fail(WIRE_ERROR_ACTIVATED, "the capture is already active"),
        }
    }

    pub fn set_socket(&mut self, socket: String) -> i32 {
        self.socket = PathBuf::from(&socket);
        self.set(|builder| builder.socket(socket))
    }

    pub fn set_netns(&mut self, netns: String) -> i32 {
        self.netns = netns.clone();
        self.set(|builder| builder.netns(netns))
    }

    pub fn set_timeout(&mut self, timeout: Duration) -> i32 {
        self.timeout = timeout;
        self.set(|builder| builder.timeout(timeout))
    }

    pub fn set_nonblock(&mut self, nonblock: bool) -> i32 {
        self.nonblock = nonblock;
        0
    }

    pub fn nonblock(&self) -> bool {
        self.nonblock
    }

    pub fn activate(&mut self) -> i32 {
        let Some(builder) = self.builder.take() else {
            return self.fail(WIRE_ERROR_ACTIVATED, "the capture is already active");
        };
        match Capture::open(builder) {
            Ok(capture) => {
                self.capture = Some(capture);
                0
            }
            Err(err) => self.failure(&err),
        }
    }

    /// The capture, or the code saying there is none yet.
    fn active(&mut self) -> Result<(), i32> {
        if self.capture.is_some() {
            Ok(())
        } else {
            Err(self.fail(WIRE_ERROR_NOT_ACTIVATED, "the capture is not active"))
        }
    }

    pub fn set_filter(&mut self, expression: &str, optimize: bool) -> i32 {
        if let Err(code) = self.active() {
            return code;
        }
        let result = self
            .capture
            .as_mut()
            .expect("active")
            .set_filter(expression, optimize);
        match result {
            Ok(()) => 0,
            Err(err) => self.failure(&err),
        }
    }

    /// Compiles `expression` here, for the handle's snaplen.
    pub fn compile(&mut self, expression: &str, optimize: bool) -> Result<Vec<CbpfInsn>, i32> {
        let snaplen = self.capture.as_ref().map_or(262_144, Capture::snaplen);
        match pktd_filter::compile(expression, optimize, snaplen) {
            Ok(program) => Ok(program.insns().to_vec()),
            Err(err) => Err(self.fail(WIRE_ERROR, err)),
        }
    }

    pub fn set_filter_program(&mut self, program: &[CbpfInsn]) -> i32 {
        if let Err(code) = self.active() {
            return code;
        }
        let result = self
            .capture
            .as_mut()
            .expect("active")
            .set_filter_program(program);
        match result {
            Ok(()) => 0,
            Err(err) => self.failure(&err),
        }
    }

    fn wait(&self) -> Duration {
        if self.nonblock {
            Duration::ZERO
        } else {
            self.timeout
        }
    }

    /// `wire_next_ex`: 1 and the packet, 0 on timeout, WIRE_ERROR_BREAK
    /// at the end, WIRE_ERROR on failure.
    pub fn next_ex(&mut self) -> (i32, Option<(*const WirePkthdr, *const u8)>) {
        if let Err(code) = self.active() {
            return (code, None);
        }
        let wait = self.wait();
        let capture = self.capture.as_mut().expect("active");
        let outcome = match capture.next_packet_within(wait) {
            Ok(Next::Packet(packet)) => {
                self.data.clear();
                self.data.extend_from_slice(packet.data());
                self.header = header(&packet);
                Ok(true)
            }
            Ok(Next::Timeout) => Ok(false),
            Ok(Next::End) => {
                self.ended = true;
                return (WIRE_ERROR_BREAK, None);
            }
            Err(err) => Err(err),
        };
        match outcome {
            Ok(true) => (1, Some((&self.header, self.data.as_ptr()))),
            Ok(false) => (0, None),
            Err(err) => (self.failure(&err), None),
        }
    }

    /// `wire_dispatch`: at most `count` packets (all there are for 0 or
    /// less) to `each`, waiting for the first at most the timeout, and
    /// looking for `wire_breakloop` at least every [`BREAK_CHECK`].
    pub fn dispatch(
        &mut self,
        breaking: &AtomicBool,
        count: i32,
        mut each: impl FnMut(&WirePkthdr, &[u8]),
    ) -> i32 {
        if let Err(code) = self.active() {
            return code;
        }
        let deadline = Instant::now() + self.wait();
        let capture = self.capture.as_mut().expect("active");
        let limit = if count <= 0 { u64::MAX } else { count as u64 };
        let mut done = 0u64;
        let mut failed = None;
        while done < limit {
            if breaking.swap(false, Ordering::AcqRel) {
                if done == 0 {
                    return WIRE_ERROR_BREAK;
                }
                break;
            }
            let wait = if done == 0 {
                deadline
                    .saturating_duration_since(Instant::now())
                    .min(BREAK_CHECK)
            } else {
                Duration::ZERO
            };
            match capture.next_packet_within(wait) {
                Ok(Next::Packet(packet)) => {
                    each(&header(&packet), packet.data());
                    done += 1;
                }
                Ok(Next::Timeout) if done == 0 && Instant::now() < deadline => {}
                Ok(Next::Timeout) => break,
                Ok(Next::End) => {
                    self.ended = true;
                    break;
                }
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        match failed {
            Some(err) => self.failure(&err),
            None => done.min(i32::MAX as u64) as i32,
        }
    }

    /// `wire_loop`: dispatches until `count` packets (forever for 0 or
    /// less), the end (0), a break (WIRE_ERROR_BREAK) or an error.
    pub fn run(
        &mut self,
        breaking: &AtomicBool,
        count: i32,
        mut each: impl FnMut(&WirePkthdr, &[u8]),
    ) -> i32 {
        let mut left = if count <= 0 { None } else { Some(count) };
        loop {
            let done = self.dispatch(breaking, left.unwrap_or(0), &mut each);
            if done < 0 {
                return done;
            }
            if let Some(left) = left.as_mut() {
                *left -= done;
                if *left <= 0 {
                    return 0;
                }
            }
            if self.ended {
                return 0;
            }
        }
    }

    pub fn selectable_fd(&self) -> i32 {
        match self.capture.as_ref() {
            Some(capture) => std::os::fd::AsRawFd::as_raw_fd(capture),
            None => -1,
        }
    }

    pub fn stats(&mut self) -> Result<WireStat, i32> {
        self.active()?;
        let result = self.capture.as_mut().expect("active").stats();
        match result {
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

    /// Sends `frames` on the handle's interface; how many went out (the
    /// error says why the first refused one was).
    pub fn inject(&mut self, frames: &[Vec<u8>]) -> i32 {
        if self.injector.is_none() {
            match Injector::open(&self.socket, &self.netns, &self.interface) {
                Ok(injector) => self.injector = Some(injector),
                Err(err) => return self.failure(&err),
            }
        }
        let result = self.injector.as_mut().expect("opened above").inject(frames);
        let verdicts = match result {
            Ok(verdicts) => verdicts,
            Err(err) => return self.failure(&err),
        };
        let sent = verdicts
            .iter()
            .filter(|verdict| **verdict == InjectVerdict::Sent)
            .count();
        let refused = verdicts.iter().find_map(|verdict| match verdict {
            InjectVerdict::Refused(reason) => Some(reason.clone()),
            InjectVerdict::Sent => None,
        });
        match refused {
            Some(reason) if sent == 0 => self.fail(WIRE_ERROR, format!("refused: {reason}")),
            Some(reason) => {
                self.fail(WIRE_ERROR, format!("refused: {reason}"));
                sent as i32
            }
            None => sent as i32,
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
            Direction::In => WIRE_D_IN,
            Direction::Out => WIRE_D_OUT,
            Direction::InOut => WIRE_D_INOUT,
        },
    }
}
