//! Requests that are not a live capture: recordings the daemon writes to
//! disk, and their listing and stopping.

use std::path::Path;

use pktd_proto::{RecordRequest, RecordingInfo, Reply, Request};

use crate::{
    CaptureBuilder, Error,
    handshake::{connect, greet, unexpected},
};

/// How a recording rotates its files (tcpdump's -G, -C, -W and -c).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// A new file every this many seconds (0: never).
    pub seconds: u32,
    /// A new file before one exceeds this many bytes (0: never).
    pub bytes: u64,
    /// A new file after this many packets (0: never).
    pub packets: u64,
    /// Keep at most this many files, deleting the oldest (0: all).
    pub max_files: u32,
}

async fn ask(socket: &Path, request: Request) -> Result<Reply, Error> {
    let mut connection = greet(connect(socket).await?).await?;
    connection.write_request(&request).await?;
    match connection.read_reply().await? {
        Some(Reply::Error { code, message }) => Err(Error::Daemon { code, message }),
        Some(reply) => Ok(reply),
        None => Err(Error::Disconnected),
    }
}

impl CaptureBuilder {
    /// Instead of streaming, has the daemon record this capture into files
    /// named by `pattern` (one `%d`, the file's number) in the directory the
    /// policy gives the user. Returns once the daemon has accepted it; the
    /// recording goes on without this process.
    pub async fn record(
        self,
        pattern: &str,
        rotation: &Rotation,
        pcapng: bool,
    ) -> Result<RecordingInfo, Error> {
        let (socket, capture) = self.into_parts();
        let request = Request::Record(RecordRequest {
            capture,
            pattern: pattern.to_owned(),
            rotate_seconds: rotation.seconds,
            rotate_bytes: rotation.bytes,
            rotate_packets: rotation.packets,
            max_files: rotation.max_files,
            pcapng,
        });
        match ask(&socket, request).await? {
            Reply::Recording(info) => Ok(info),
            other => Err(unexpected(Some(other))),
        }
    }
}

/// The user's recordings (root: everyone's), running or recently ended.
pub async fn list_recordings(socket: impl AsRef<Path>) -> Result<Vec<RecordingInfo>, Error> {
    match ask(socket.as_ref(), Request::ListRecordings).await? {
        Reply::Recordings(list) => Ok(list),
        other => Err(unexpected(Some(other))),
    }
}

/// Stops one of the user's recordings and returns it as it ended.
pub async fn stop_recording(socket: impl AsRef<Path>, id: u64) -> Result<RecordingInfo, Error> {
    match ask(socket.as_ref(), Request::StopRecording { id }).await? {
        Reply::Recording(info) => Ok(info),
        other => Err(unexpected(Some(other))),
    }
}
