//! A connection's socket: requests read, replies written, each write with
//! a deadline. A client that stops reading is dropped when one of its
//! replies cannot be written in time, and while the daemon shuts down
//! nothing waits long for any client.

use std::{
    future::Future,
    io,
    os::fd::{AsFd as _, OwnedFd},
    time::Duration,
};

use pktd_proto::{Connection, MAX_REPLY_FRAME, ProtoError, Reply, Request};
use tokio::{
    io::{AsyncWriteExt as _, Interest},
    net::UnixStream,
};
use tokio_util::sync::CancellationToken;

use crate::sys;

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
        let deadline = self.deadline();
        let shutdown = self.shutdown.clone();
        within(deadline, shutdown, self.connection.write_reply(reply)).await
    }

    /// Writes frames already encoded, as [`ClientSocket::send`] writes a
    /// reply.
    pub async fn send_encoded(&mut self, frames: &[u8]) -> Result<(), Gone> {
        let deadline = self.deadline();
        let shutdown = self.shutdown.clone();
        within(deadline, shutdown, self.connection.write_encoded(frames)).await
    }

    /// Writes `reply` as [`ClientSocket::send`] does, with `fd` attached
    /// to its first byte (SCM_RIGHTS); the descriptor is the client's
    /// once this returns `Ok`, and closed here either way.
    pub async fn send_with_fd(&mut self, reply: &Reply, fd: OwnedFd) -> Result<(), Gone> {
        let frame = pktd_proto::encode_frame(reply, MAX_REPLY_FRAME).map_err(|_| Gone)?;
        let deadline = self.deadline();
        let shutdown = self.shutdown.clone();
        let stream = self.connection.get_mut();
        let write = async move {
            let sent = loop {
                stream.writable().await?;
                match stream.try_io(Interest::WRITABLE, || {
                    sys::send_with_fd(stream.as_fd(), &frame, fd.as_fd())
                }) {
                    Ok(sent) => break sent,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(err) => return Err(err),
                }
            };
            stream.write_all(&frame[sent..]).await
        };
        within(deadline, shutdown, write).await
    }

    fn deadline(&self) -> Duration {
        if self.shutdown.is_cancelled() {
            SHUTDOWN_WRITE
        } else {
            self.write_deadline
        }
    }
}

/// Runs a write within `deadline`, and no longer than a moment once
/// `shutdown` is cancelled.
async fn within<E>(
    deadline: Duration,
    shutdown: CancellationToken,
    write: impl Future<Output = Result<(), E>>,
) -> Result<(), Gone> {
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_WRITE).await;
    };
    tokio::select! {
        written = tokio::time::timeout(deadline, write) => match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(Gone),
        },
        () = grace => Err(Gone),
    }
}
