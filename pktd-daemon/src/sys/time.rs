//! Clocks: the kernel program stamps records with CLOCK_TAI.

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_REALTIME minus CLOCK_TAI, in nanoseconds: turns the kernel
/// program's TAI timestamps into wall-clock time.
pub fn realtime_minus_tai_ns() -> i64 {
    (clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_TAI)) as i64
}
