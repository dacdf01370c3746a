//! File name patterns of recordings: the only source of the names of
//! files the daemon creates in a principal's directory.

/// The longest pattern accepted, in bytes: with its `%d` replaced by the
/// largest file number (20 digits), a name still fits `NAME_MAX` (255).
pub const MAX_PATTERN_LEN: usize = NAME_MAX - (U64_DIGITS - 2);

/// The longest file name the kernel takes.
const NAME_MAX: usize = 255;
/// Digits of `u64::MAX`.
const U64_DIGITS: usize = 20;

/// The file name pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid file name pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// Why it was refused.
    pub reason: &'static str,
}

/// A validated file name pattern: exactly one `%d`, which is replaced by the
/// file's sequence number; otherwise only `A-Z a-z 0-9 . _ -`; not starting
/// with `.` or `-`; at most [`MAX_PATTERN_LEN`] (237) bytes, so that every
/// name it makes fits `NAME_MAX`.
///
/// The pattern is never used as a format string: names are the text before
/// the `%d`, the number in decimal, and the text after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    prefix: String,
    suffix: String,
}

impl Pattern {
    /// Validates `text`.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let refuse = |reason| {
            Err(PatternError {
                pattern: text.to_owned(),
                reason,
            })
        };
        if text.len() > MAX_PATTERN_LEN {
            return refuse("longer than 237 bytes (its names must fit 255 with a 20-digit number)");
        }
        if text.matches("%d").count() != 1 {
            return refuse("must contain exactly one %d");
        }
        let (prefix, suffix) = text.split_once("%d").expect("one %d");
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !prefix.chars().chain(suffix.chars()).all(allowed) {
            return refuse("may only contain A-Z a-z 0-9 . _ - and one %d");
        }
        if text.starts_with(['.', '-']) {
            return refuse("must not start with . or -");
        }
        Ok(Pattern {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        })
    }

    /// The name of file number `index`: the `%d` replaced by `index` in
    /// decimal.
    pub fn file_name(&self, index: u64) -> String {
        format!("{}{index}{}", self.prefix, self.suffix)
    }
}

/// Whether `name` could have been made by a pattern: the characters a
/// pattern allows and digits, not starting with `.` or `-`, at most
/// `NAME_MAX` bytes. What a journal names is checked with it before it is
/// looked up in a user's directory.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%d{}", self.prefix, self.suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_patterns_parse() {
        for (text, name) in [
            ("icmp-%d.pcap", "icmp-7.pcap"),
            ("a%d", "a7"),
            ("%d", "7"),
            ("%dd", "7d"),
            ("x_%d.Y-z", "x_7.Y-z"),
        ] {
            let pattern = Pattern::parse(text).unwrap();
            assert_eq!(pattern.file_name(7), name);
            assert_eq!(pattern.to_string(), text);
        }
        let pattern = Pattern::parse("t-%d.pcap").unwrap();
        assert_eq!(pattern.file_name(0), "t-0.pcap");
        assert_eq!(pattern.file_name(u64::MAX), "t-18446744073709551615.pcap");
        let longest = format!("{}%d", "a".repeat(MAX_PATTERN_LEN - 2));
        assert!(Pattern::parse(&longest).is_ok());
        assert_eq!(U64_DIGITS, u64::MAX.to_string().len());
    }

    /// Found by the fuzz target's author (fuzz/fuzz_targets/patterns.rs):
    /// with 255-byte patterns, names from file 100 on outgrew NAME_MAX,
    /// `openat` refused them and the recording ended.
    #[test]
    fn every_name_of_an_accepted_pattern_fits_name_max() {
        let longest = format!("{}%d", "a".repeat(MAX_PATTERN_LEN - 2));
        let pattern = Pattern::parse(&longest).expect("the longest pattern");
        for index in [0, 9, 99, 100, 1000, u64::MAX] {
            let name = pattern.file_name(index);
            assert!(name.len() <= NAME_MAX, "file {index}: {} bytes", name.len());
        }
        let one_more = format!("{}%d", "a".repeat(MAX_PATTERN_LEN - 1));
        assert!(Pattern::parse(&one_more).is_err());
    }

    #[test]
    fn hostile_patterns_are_refused_with_a_reason() {
        let long = format!("{}%d", "a".repeat(MAX_PATTERN_LEN - 1));
        assert_eq!(long.len(), MAX_PATTERN_LEN + 1);
        for (text, reason) in [
            ("../a%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("/etc/x%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("a/b%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("%n", "must contain exactly one %d"),
            ("%d%d", "must contain exactly one %d"),
            ("%s", "must contain exactly one %d"),
            ("%x%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("%%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("%d%n", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("%d%", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("%5d", "must contain exactly one %d"),
            (".hidden%d", "must not start with . or -"),
            ("-rf%d", "must not start with . or -"),
            (".%d", "must not start with . or -"),
            (
                &long,
                "longer than 237 bytes (its names must fit 255 with a 20-digit number)",
            ),
            ("a%d\0", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("a\0%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("a%d\n", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("a b%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("é%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            (
                "a%d\u{2215}x",
                "may only contain A-Z a-z 0-9 . _ - and one %d",
            ),
            ("", "must contain exactly one %d"),
            ("plain.pcap", "must contain exactly one %d"),
        ] {
            match Pattern::parse(text) {
                Err(PatternError {
                    pattern,
                    reason: got,
                }) => {
                    assert_eq!(pattern, text);
                    assert_eq!(got, reason, "pattern {text:?}");
                }
                other => panic!("pattern {text:?}: {other:?}"),
            }
        }
        let message = Pattern::parse("%s").unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid file name pattern \"%s\": must contain exactly one %d"
        );
    }
}
