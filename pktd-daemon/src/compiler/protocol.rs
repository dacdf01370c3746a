//! What the daemon and a compile helper say to each other, over the
//! helper's standard input and output. One request, one answer, then the
//! helper exits.
//!
//! - request: `pktd-compile 1 OPTIMIZE SNAPLEN\n` (OPTIMIZE is 0 or 1),
//!   then the expression's bytes up to the end of input;
//! - answer: `ok\n` and the program in tcpdump's `-ddd` form, or `error\n`
//!   and libpcap's message.
//!
//! The daemon trusts nothing in an answer: a program is parsed and
//! validated with the kernel's rules like any client's bytecode.

/// Longest expression accepted, in bytes. libpcap's compile time grows
/// with the cube of an expression's length, so this alone bounds nothing;
/// the helper's deadline does. It bounds what a client makes the daemon
/// copy and the helper parse.
pub const MAX_EXPRESSION_LEN: usize = 16 * 1024;

const MAGIC: &str = "pktd-compile 1";

/// A request to compile one expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The tcpdump expression.
    pub expression: String,
    /// Whether libpcap's optimiser runs.
    pub optimize: bool,
    /// What an accepting filter returns.
    pub snaplen: u32,
}

impl Request {
    /// The request's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes =
            format!("{MAGIC} {} {}\n", u8::from(self.optimize), self.snaplen).into_bytes();
        bytes.extend_from_slice(self.expression.as_bytes());
        bytes
    }

    /// Reads a request back; `None` for anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let newline = bytes.iter().position(|byte| *byte == b'\n')?;
        let header = std::str::from_utf8(&bytes[..newline]).ok()?;
        let mut words = header.strip_prefix(MAGIC)?.split_whitespace();
        let optimize = match words.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let snaplen = words.next()?.parse().ok()?;
        if words.next().is_some() {
            return None;
        }
        let expression = std::str::from_utf8(&bytes[newline + 1..]).ok()?;
        if expression.len() > MAX_EXPRESSION_LEN {
            return None;
        }
        Some(Self {
            expression: expression.to_owned(),
            optimize,
            snaplen,
        })
    }
}

/// A helper's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The program, in `-ddd` form.
    Program(String),
    /// libpcap's error message.
    Error(String),
}

impl Answer {
    /// The answer's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Program(ddd) => format!("ok\n{ddd}"),
            Self::Error(message) => format!("error\n{message}"),
        }
        .into_bytes()
    }

    /// Reads an answer back; `None` for anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        if let Some(program) = text.strip_prefix("ok\n") {
            Some(Self::Program(program.to_owned()))
        } else {
            text.strip_prefix("error\n")
                .map(|message| Self::Error(message.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_round_trip_and_garbage_is_refused() {
        let request = Request {
            expression: "udp port 53\nand not host 10.0.0.1".into(),
            optimize: true,
            snaplen: 262_144,
        };
        assert_eq!(Request::decode(&request.encode()), Some(request));
        for garbage in [
            &b""[..],
            b"pktd-compile 1 1 96",
            b"pktd-compile 2 1 96\nudp",
            b"pktd-compile 1 2 96\nudp",
            b"pktd-compile 1 1 -1\nudp",
            b"pktd-compile 1 1 96 7\nudp",
            b"pktd-compile 1 1 96\n\xff",
        ] {
            assert_eq!(Request::decode(garbage), None, "{garbage:?}");
        }
        let long = Request {
            expression: "u".repeat(MAX_EXPRESSION_LEN + 1),
            optimize: false,
            snaplen: 1,
        };
        assert_eq!(Request::decode(&long.encode()), None, "too long");
        for answer in [
            Answer::Program("1\n6 0 0 65535\n".into()),
            Answer::Error("syntax error".into()),
        ] {
            assert_eq!(Answer::decode(&answer.encode()), Some(answer));
        }
        assert_eq!(Answer::decode(b"maybe\n"), None);
    }
}
