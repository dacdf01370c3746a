//! Injection: hand Ethernet frames to the daemon, which checks each against
//! the policy (injection filter, rate, source addresses, well-formedness)
//! and sends it, or says why not.

use std::path::Path;

use pktd_proto::{Connection, Frame, InjectVerdict, Reply, Request};
use tokio::net::UnixStream;

use crate::{
    Error,
    handshake::{connect, greet, unexpected},
};

/// Most frame bytes in one request, well under the protocol's request cap.
const BATCH_BYTES: usize = 192 * 1024;

/// A connection that injects on one interface.
///
/// ```no_run
/// # async fn example(frame: Vec<u8>) -> Result<(), libwire::Error> {
/// let mut injector = libwire::Injector::open("/run/pktd/pktd.sock", "lab", "veth0").await?;
/// for verdict in injector.inject(&[frame]).await? {
///     if let libwire::InjectVerdict::Refused(reason) = verdict {
///         eprintln!("refused: {reason}");
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Injector {
    connection: Connection<UnixStream>,
    netns: String,
    interface: String,
    sent: u64,
    refused: u64,
}

impl Injector {
    /// Connects to the daemon at `socket`.
    pub async fn open(
        socket: impl AsRef<Path>,
        netns: &str,
        interface: &str,
    ) -> Result<Self, Error> {
        let stream = connect(socket.as_ref()).await?;
        Self::open_on(stream, netns, interface).await
    }

    /// Uses an already connected stream.
    pub async fn open_on(stream: UnixStream, netns: &str, interface: &str) -> Result<Self, Error> {
        let connection = greet(stream).await?;
        Ok(Self {
            connection,
            netns: netns.to_owned(),
            interface: interface.to_owned(),
            sent: 0,
            refused: 0,
        })
    }

    /// Injects `frames` in order; one verdict per frame. A refusal of the
    /// whole request (say, the policy allows this user no injection) is an
    /// error.
    pub async fn inject(&mut self, frames: &[Vec<u8>]) -> Result<Vec<InjectVerdict>, Error> {
        let mut verdicts = Vec::with_capacity(frames.len());
        let mut start = 0;
        while start < frames.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < frames.len() && (end == start || bytes + frames[end].len() <= BATCH_BYTES) {
                bytes += frames[end].len();
                end += 1;
            }
            let request = Request::Inject {
                netns: self.netns.clone(),
                interface: self.interface.clone(),
                frames: frames[start..end].iter().cloned().map(Frame).collect(),
            };
            self.connection.write_request(&request).await?;
            match self.connection.read_reply().await? {
                Some(Reply::Injected(batch)) if batch.len() == end - start => {
                    for verdict in &batch {
                        match verdict {
                            InjectVerdict::Sent => self.sent += 1,
                            InjectVerdict::Refused(_) => self.refused += 1,
                        }
                    }
                    verdicts.extend(batch);
                }
                other => return Err(unexpected(other)),
            }
            start = end;
        }
        Ok(verdicts)
    }

    /// Frames sent so far on this connection.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Frames refused so far on this connection.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}
