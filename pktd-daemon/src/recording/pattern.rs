//! File name patterns of recordings: the only source of the names of
//! files the daemon creates in a principal's directory.

/// The longest pattern accepted, in bytes (`NAME_MAX`).
pub const MAX_PATTERN_LEN: usize = 255;

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
/// with `.` or `-`; at most 255 bytes.
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
            return refuse("longer than 255 bytes");
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
        let longest = format!("{}%d", "a".repeat(253));
        assert!(Pattern::parse(&longest).is_ok());
    }

    #[test]
    fn hostile_patterns_are_refused_with_a_reason() {
        let long = format!("{}%d", "a".repeat(254));
        assert_eq!(long.len(), 256);
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
            (&long, "longer than 255 bytes"),
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
