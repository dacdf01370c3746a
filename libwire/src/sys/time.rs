//! Clocks.

use rustix::time::{ClockId, clock_gettime};

/// CLOCK_REALTIME minus CLOCK_TAI in nanoseconds: what turns the kernel
/// program's TAI timestamps into wall-clock time.
pub(crate) fn realtime_minus_tai_ns() -> i64 {
    let ns = |clock| {
        let t = clock_gettime(clock);
        i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
    };
    (ns(ClockId::Realtime) - ns(ClockId::Tai)) as i64
}
