//! Every way a request is refused, and the one place typed errors become
//! wire codes (as rustls maps its errors to alerts): a client reads a
//! stable [`ErrorCode`] and the error's text with its causes.

use pktd_proto::{ErrorCode, Reply};

use crate::{
    capture::CaptureError,
    compiler::CompileError,
    errors,
    inject::InjectError,
    policy::Denied,
    recording::{DirectoryError, FilesError, PatternError},
    session::OpenError,
};

/// Why a request was not done.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The policy does not allow it.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Opening a session, or replacing its filter, failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A recording's file name pattern is not acceptable.
    #[error(transparent)]
    Pattern(#[from] PatternError),
    /// The user's record directory could not be opened, or may not be
    /// used.
    #[error("record directory")]
    RecordDirectory(#[from] DirectoryError),
    /// The client's hello was refused.
    #[error("{message}")]
    Hello {
        /// BadHello or UnsupportedVersion.
        code: ErrorCode,
        /// Why.
        message: String,
    },
    /// A recording's first file could not be made.
    #[error("cannot record")]
    Files(#[from] FilesError),
    /// An injection sender could not be set up.
    #[error(transparent)]
    Inject(#[from] InjectError),
    /// The request does not fit the connection's state.
    #[error("{0}")]
    OutOfOrder(&'static str),
    /// The frame was whole but its content did not decode.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The client's uid has as many connections as one uid may.
    #[error("uid {uid} has {limit} connections to pktd already, the most one user may have")]
    UserConnections {
        /// The client's uid.
        uid: u32,
        /// The limit.
        limit: u32,
    },
    /// The daemon serves as many connections as it serves at once.
    #[error("pktd serves {limit} connections already; try again later")]
    Connections {
        /// The limit.
        limit: u32,
    },
    /// A recording of the run before, whose principal's record directory
    /// the policy has moved since (as a reload that moves it ends it).
    #[error("the principal's record directory is now {}", directory.display())]
    RecordDirectoryMoved {
        /// The directory now.
        directory: std::path::PathBuf,
    },
    /// No recording of that id in the client's scope.
    #[error("no recording {id} of yours")]
    NoSuchRecording {
        /// The id asked for.
        id: u64,
    },
}

impl From<CaptureError> for Refusal {
    fn from(err: CaptureError) -> Self {
        Self::Open(OpenError::Capture(err))
    }
}

impl From<&Refusal> for ErrorCode {
    fn from(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::Denied(Denied::NetnsName(_)) => ErrorCode::NoSuchNetns,
            Refusal::Denied(Denied::CountOnlyRecording) => ErrorCode::Malformed,
            Refusal::Denied(_) => ErrorCode::Denied,
            Refusal::Open(OpenError::Filter(_)) => ErrorCode::InvalidFilter,
            Refusal::Open(OpenError::Compile(err)) => match err {
                CompileError::TooLong { .. } | CompileError::Filter(_) => ErrorCode::InvalidFilter,
                CompileError::Busy { .. }
                | CompileError::Saturated { .. }
                | CompileError::Deadline { .. } => ErrorCode::Limit,
                CompileError::Helper { .. } => ErrorCode::Internal,
            },
            Refusal::Open(
                OpenError::Limit { .. }
                | OpenError::FilterCost { .. }
                | OpenError::FilterCostLowered { .. },
            ) => ErrorCode::Limit,
            Refusal::Open(OpenError::AnonymizationChanged { .. }) => ErrorCode::Denied,
            Refusal::Open(OpenError::Capture(err)) => err.into(),
            Refusal::Open(OpenError::PolicyFilter(_) | OpenError::Ring(_)) => ErrorCode::Internal,
            Refusal::Pattern(_) => ErrorCode::Malformed,
            Refusal::Files(FilesError::Limits { .. }) => ErrorCode::Malformed,
            Refusal::Files(_) => ErrorCode::Denied,
            Refusal::Inject(InjectError::Netns(_)) => ErrorCode::NoSuchNetns,
            Refusal::Inject(_) => ErrorCode::NoSuchInterface,
            Refusal::OutOfOrder(_) => ErrorCode::OutOfOrder,
            Refusal::Malformed(_) => ErrorCode::Malformed,
            Refusal::NoSuchRecording { .. } | Refusal::RecordDirectoryMoved { .. } => {
                ErrorCode::Denied
            }
            Refusal::RecordDirectory(DirectoryError::Unsafe { .. }) => ErrorCode::Denied,
            Refusal::RecordDirectory(DirectoryError::Io { .. }) => ErrorCode::Internal,
            Refusal::Hello { code, .. } => *code,
            Refusal::UserConnections { .. } | Refusal::Connections { .. } => ErrorCode::Limit,
        }
    }
}

impl From<&CaptureError> for ErrorCode {
    fn from(err: &CaptureError) -> Self {
        match err {
            CaptureError::NoInterface { .. } => ErrorCode::NoSuchInterface,
            CaptureError::Netns(_) => ErrorCode::NoSuchNetns,
            CaptureError::SlotsFull { .. } | CaptureError::AttachmentsFull { .. } => {
                ErrorCode::Limit
            }
            CaptureError::InvalidSpec { .. } => ErrorCode::Malformed,
            _ => ErrorCode::Internal,
        }
    }
}

impl Refusal {
    /// The error reply a client reads.
    pub fn reply(&self) -> Reply {
        Reply::Error {
            code: self.into(),
            message: errors::chain(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use pktd_filter::FilterError;

    use super::*;

    #[test]
    fn typed_errors_become_codes_and_messages_with_causes() {
        let denied = Refusal::from(Denied::NoRecordDirectory {
            principal: "lab".into(),
        });
        assert_eq!(ErrorCode::from(&denied), ErrorCode::Denied);
        assert_eq!(
            denied.reply(),
            Reply::Error {
                code: ErrorCode::Denied,
                message: "principal \"lab\" may not record to disk".into()
            }
        );
        let filter = Refusal::from(OpenError::Filter(FilterError::Compile {
            expression: "tcp port".into(),
            message: "syntax error".into(),
        }));
        assert_eq!(ErrorCode::from(&filter), ErrorCode::InvalidFilter);
        let slots = Refusal::from(CaptureError::SlotsFull { max: 64 });
        assert_eq!(ErrorCode::from(&slots), ErrorCode::Limit);
        let policy_filter = Refusal::from(OpenError::PolicyFilter(FilterError::Compile {
            expression: "bad".into(),
            message: "syntax error".into(),
        }));
        let Reply::Error { code, message } = policy_filter.reply() else {
            unreachable!()
        };
        assert_eq!(code, ErrorCode::Internal);
        assert!(
            message.starts_with("the policy's filter: ") && message.contains("syntax error"),
            "{message}"
        );
        let pattern = Refusal::from(PatternError {
            pattern: "%s".into(),
            reason: "must contain exactly one %d",
        });
        assert_eq!(ErrorCode::from(&pattern), ErrorCode::Malformed);
        assert_eq!(
            ErrorCode::from(&Refusal::from(Denied::CountOnlyRecording)),
            ErrorCode::Malformed
        );
    }
}
