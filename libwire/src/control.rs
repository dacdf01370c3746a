//! Requests that are not a live capture: recordings the daemon writes to
//! disk, their listing and stopping, and the daemon's performance
//! statistics.

use std::path::{Path, PathBuf};

pub use pktd_proto::Rotation;
use pktd_proto::{
    Connection, DaemonStats, InterfaceInfo, RecordingInfo, RecordingRequest, Reply, Request,
};
use tokio::net::UnixStream;

use crate::{
    CaptureBuilder, Error,
    handshake::{connect, greet, unexpected},
};

/// A connection for requests that are not a capture, kept open for as
/// many as the caller likes (`pktd stats` asks once per interval).
///
/// ```no_run
/// # async fn example() -> Result<(), libwire::Error> {
/// let mut control = libwire::Control::connect(libwire::DEFAULT_SOCKET).await?;
/// let stats = control.daemon_stats().await?;
/// println!("{} sessions visible to me", stats.sessions.len());
/// for recording in control.recordings().await? {
///     println!("recording {}: {} packets", recording.id, recording.packets);
/// }
/// # Ok(()) }
/// ```
///
/// The daemon closes a connection that stays silent for a while (a minute
/// by default); a `Control` made with [`Control::connect`] then connects
/// again for the next request.
pub struct Control {
    connection: Connection<UnixStream>,
    /// Where to connect again.
    socket: Option<PathBuf>,
}

impl Control {
    /// Connects to the daemon at `socket` and says hello.
    pub async fn connect(socket: impl AsRef<Path>) -> Result<Self, Error> {
        let socket = socket.as_ref().to_owned();
        Ok(Self {
            connection: greet(connect(&socket).await?).await?,
            socket: Some(socket),
        })
    }

    /// Says hello over an already connected stream.
    pub async fn connect_on(stream: UnixStream) -> Result<Self, Error> {
        Ok(Self {
            connection: greet(stream).await?,
            socket: None,
        })
    }

    /// The daemon's counters now: every interface and session for root,
    /// the caller's own sessions otherwise.
    pub async fn daemon_stats(&mut self) -> Result<DaemonStats, Error> {
        match self.ask(Request::DaemonStats).await? {
            Reply::DaemonStats(stats) => Ok(stats),
            other => Err(unexpected(Some(other))),
        }
    }

    /// The caller's recordings (root: everyone's), running or recently
    /// ended.
    pub async fn recordings(&mut self) -> Result<Vec<RecordingInfo>, Error> {
        match self.ask(Request::ListRecordings).await? {
            Reply::Recordings(list) => Ok(list),
            other => Err(unexpected(Some(other))),
        }
    }

    /// The interfaces the caller may capture on, in every network
    /// namespace its policy names.
    pub async fn interfaces(&mut self) -> Result<Vec<InterfaceInfo>, Error> {
        match self.ask(Request::ListInterfaces).await? {
            Reply::Interfaces(list) => Ok(list),
            other => Err(unexpected(Some(other))),
        }
    }

    /// Stops one of the caller's recordings and returns it as it ended.
    pub async fn stop_recording(&mut self, id: u64) -> Result<RecordingInfo, Error> {
        match self.ask(Request::StopRecording { id }).await? {
            Reply::Recording(info) => Ok(info),
            other => Err(unexpected(Some(other))),
        }
    }

    async fn ask(&mut self, request: Request) -> Result<Reply, Error> {
        match self.ask_once(&request).await {
            // Closed while idle: once more on a new connection.
            Err(Error::Disconnected | Error::Protocol(_)) if self.socket.is_some() => {
                let socket = self.socket.clone().expect("checked");
                self.connection = greet(connect(&socket).await?).await?;
                self.ask_once(&request).await
            }
            result => result,
        }
    }

    async fn ask_once(&mut self, request: &Request) -> Result<Reply, Error> {
        self.connection.write_request(request).await?;
        match self.connection.read_reply().await? {
            Some(Reply::Error { code, message }) => Err(Error::Daemon { code, message }),
            Some(reply) => Ok(reply),
            None => Err(Error::Disconnected),
        }
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
        let mut control = Control::connect(&socket).await?;
        let request = Request::StartRecording(RecordingRequest {
            capture,
            pattern: pattern.to_owned(),
            rotation: *rotation,
            pcapng,
        });
        match control.ask(request).await? {
            Reply::Recording(info) => Ok(info),
            other => Err(unexpected(Some(other))),
        }
    }
}

/// The user's recordings (root: everyone's), running or recently ended.
pub async fn list_recordings(socket: impl AsRef<Path>) -> Result<Vec<RecordingInfo>, Error> {
    Control::connect(socket).await?.recordings().await
}

/// The interfaces the user may capture on (tcpdump's `-D`).
pub async fn list_interfaces(socket: impl AsRef<Path>) -> Result<Vec<InterfaceInfo>, Error> {
    Control::connect(socket).await?.interfaces().await
}

/// Stops one of the user's recordings and returns it as it ended.
pub async fn stop_recording(socket: impl AsRef<Path>, id: u64) -> Result<RecordingInfo, Error> {
    Control::connect(socket).await?.stop_recording(id).await
}
