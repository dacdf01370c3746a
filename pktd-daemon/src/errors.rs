//! Errors as text: a typed error and its causes on one line, for logs and
//! for the messages clients read.

/// `err` and each of its sources, joined by `": "`.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
