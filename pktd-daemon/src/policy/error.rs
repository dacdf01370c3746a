//! Everything that can be wrong with a policy file.

use std::{io, path::PathBuf};

/// Everything that can be wrong with a policy file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy file (or an account database) could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is not TOML, or not of the policy's shape (unknown key, wrong
    /// type, missing `name`).
    #[error("{origin} line {line}, column {column}: {message}")]
    Syntax {
        /// The file name.
        origin: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters) of the offending text.
        column: usize,
        /// The TOML parser's explanation.
        message: String,
    },
    /// A principal is well-formed TOML but says something pktd refuses.
    #[error("{origin} line {line}: principal {principal:?}: {message}")]
    Invalid {
        /// The file name.
        origin: String,
        /// 1-based line of the offending key or value.
        line: usize,
        /// The principal's name.
        principal: String,
        /// What is wrong.
        message: String,
    },
}
