//! A connection's socket: requests read, replies written, each write with
//! a deadline. A client that stops reading is dropped when one of its
//! replies cannot be written in time, and while the daemon shuts down
//! nothing waits long for any client.

use std::time::Duration;

use pktd_proto::{Connection, ProtoError, Reply, Request};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

/// Longest a write may wait once the daemon is shutting down.
const SHUTDOWN_WRITE: Duration = Duration::from_millis(300);

/// The client can no longer be written to (it left, or stopped reading).
#[derive(Debug)]
pub(super) struct Gone;

/// A connection's framed socket.
pub(super) struct ClientSocket {
    connection: Connection<UnixStream>,
    write_deadline: Duration,
    shutdown: CancellationToken,
}

impl ClientSocket {
    pub fn new(stream: UnixStream, write_deadline: Duration, shutdown: CancellationToken) -> Self {
        Self {
            connection: Connection::new(stream),
            write_deadline,
            shutdown,
        }
    }

    /// The framing, for the hello.
    pub fn connection(&mut self) -> &mut Connection<UnixStream> {
        &mut self.connection
    }

    /// The next request; `Ok(None)` when the client closed at a frame
    /// boundary.
    pub async fn read(&mut self) -> Result<Option<Request>, ProtoError> {
        self.connection.read_request().await
    }

    /// Writes `reply` within the write deadline (within a moment once the
    /// daemon is shutting down).
    pub async fn send(&mut self, reply: &Reply) -> Result<(), Gone> {
        let deadline = if self.shutdown.is_cancelled() {
            SHUTDOWN_WRITE
        } else {
            self.write_deadline
        };
        let shutdown = self.shutdown.clone();
        let grace = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_WRITE).await;
        };
        tokio::select! {
            written = tokio::time::timeout(deadline, self.connection.write_reply(reply)) => {
                match written {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) | Err(_) => Err(Gone),
                }
            }
            () = grace => Err(Gone),
        }
    }
}
