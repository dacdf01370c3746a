//! What every kind of session starts with: connecting to the daemon's
//! socket and the hello exchange; and turning a reply that does not fit
//! into an error.

use std::path::Path;

use pktd_proto::{Connection, Hello, Reply};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::UnixStream,
};

use crate::Error;

/// Connects to the daemon's socket.
pub(crate) async fn connect(socket: &Path) -> Result<UnixStream, Error> {
    UnixStream::connect(socket)
        .await
        .map_err(|source| Error::Connect {
            path: socket.to_owned(),
            source,
        })
}

/// Says hello over `stream` and waits for the daemon's acknowledgement.
pub(crate) async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
) -> Result<Connection<S>, Error> {
    let mut connection = Connection::new(stream);
    connection
        .write_hello(&Hello::new(format!(
            "libwire {}",
            env!("CARGO_PKG_VERSION")
        )))
        .await?;
    match connection.read_reply().await? {
        Some(Reply::HelloAck { .. }) => Ok(connection),
        other => Err(unexpected(other)),
    }
}

/// The error for a reply (or the end of the connection) where another
/// reply was due.
pub(crate) fn unexpected(reply: Option<Reply>) -> Error {
    match reply {
        Some(Reply::Error { code, message }) => Error::Daemon { code, message },
        Some(Reply::End { reason, .. }) => Error::Ended { reason },
        None => Error::Disconnected,
        Some(other) => Error::UnexpectedReply {
            reply: format!("{other:?}").chars().take(200).collect(),
        },
    }
}
