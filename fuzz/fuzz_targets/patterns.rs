//! Recording file name patterns (`pktd_daemon::recording::Pattern`) on
//! arbitrary text: the only source of the names of files the daemon
//! creates, as root, in a principal's directory.
//!
//! Checked: nothing panics; an accepted pattern prints back as given; and
//! every name it makes stays one harmless component: no `/`, no NUL, not
//! starting with `.` or `-`, not `.` or `..`, nothing but `A-Z a-z 0-9 . _ -`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pktd_daemon::recording::{MAX_PATTERN_LEN, Pattern};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pattern) = Pattern::parse(text) else {
        return;
    };
    assert!(text.len() <= MAX_PATTERN_LEN);
    assert_eq!(
        pattern.to_string(),
        text,
        "the pattern prints back as given"
    );
    assert_eq!(Pattern::parse(&pattern.to_string()).as_ref(), Ok(&pattern));
    for index in [0, 1, 9, 10, 99, 1000, u64::from(u32::MAX), u64::MAX] {
        let name = pattern.file_name(index);
        assert!(
            !name.is_empty()
                && !name.starts_with(['.', '-'])
                && name != "."
                && name != ".."
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
            "pattern {text:?} names file {index} {name:?}"
        );
        assert!(name.contains(&index.to_string()));
        assert!(name.len() <= 255, "file {index} of {text:?}: NAME_MAX");
    }
});
