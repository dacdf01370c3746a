//! Recording requests: start one (the daemon writes the files; it goes on
//! after the connection), list them, stop one.

use std::{path::PathBuf, sync::Arc};

use pktd_pcap::savefile::{CaptureInfo, Format};
use pktd_proto::{FilterSpec, RecordingRequest, Reply};

use super::{context::Context, refusal::Refusal};
use crate::{
    policy::{Ask, Grant, Peer, Scope, grant},
    recording::{
        DirectoryError, FilesConfig, Limits, Pattern, Recordings, Savefiles, Start, UserDirectory,
    },
    session,
};

/// Starts a recording into the principal's directory.
pub(super) async fn start(
    context: &Arc<Context>,
    peer: Peer,
    request: RecordingRequest,
) -> Result<Reply, Refusal> {
    let state = &context.state;
    let policy_changes = state.policy().subscribe();
    let Grant::Recording(granted) =
        grant(&state.policy().current(), &peer, Ask::Recording(&request))?
    else {
        unreachable!("a recording is granted as a recording");
    };
    let pattern = Pattern::parse(&request.pattern)?;
    let files = FilesRequest {
        base: granted.directory.clone(),
        principal: granted.capture.principal.clone(),
        allowance: granted.disk_allowance.unwrap_or(0),
        pattern,
        limits: Limits::from(&request.rotation),
        format: if request.pcapng {
            Format::PcapNg
        } else {
            Format::Pcap
        },
        snaplen: granted.capture.spec.snaplen,
        info: CaptureInfo {
            application: format!("pktd {}", env!("CARGO_PKG_VERSION")),
            interface: request.capture.interface.clone(),
            description: if request.capture.netns.is_empty() {
                String::new()
            } else {
                format!("netns {}", request.capture.netns)
            },
            filter: match &request.capture.filter {
                FilterSpec::Expression(expression) => expression.clone(),
                FilterSpec::Bytecode(_) => String::new(),
            },
        },
        owner: granted.owner,
    };
    let filter = (request.capture.filter.clone(), request.capture.optimize);
    // The first file before the slot: a refused name attaches nothing.
    let (session, files) = session::open(
        state,
        peer,
        granted.capture,
        filter,
        session::Reader::Daemon {
            count: request.capture.packet_count,
        },
        {
            let recordings = context.recordings.clone();
            move || create_files(&recordings, files)
        },
    )
    .await?;
    let recording = context.recordings.start(Start {
        session,
        files,
        peer,
        request,
        state: state.clone(),
        shutdown: context.shutdown.clone(),
        policy_changes,
    });
    Ok(Reply::Recording(recording.info()))
}

/// What a recording's files need, known before its directory is opened.
struct FilesRequest {
    base: PathBuf,
    principal: String,
    allowance: u64,
    pattern: Pattern,
    limits: Limits,
    format: Format,
    snaplen: u32,
    info: CaptureInfo,
    owner: (u32, u32),
}

/// Opens (making what is missing) the user's record directory, the
/// principal's disk allowance, and the recording's first file. Blocking.
fn create_files(recordings: &Recordings, files: FilesRequest) -> Result<Savefiles, Refusal> {
    let (uid, gid) = files.owner;
    let directory = UserDirectory::open(&files.base, uid, gid)?;
    let account = recordings
        .accounts()
        .get(&files.principal, &files.base, files.allowance)
        .map_err(|source| DirectoryError::Io {
            operation: "measure",
            path: files.base.clone(),
            source,
        })?;
    Ok(Savefiles::create(FilesConfig {
        directory: Arc::new(directory),
        pattern: files.pattern,
        limits: files.limits,
        format: files.format,
        snaplen: files.snaplen,
        info: files.info,
        account,
        owner: Some(files.owner),
    })?)
}

/// The client's recordings (root: all).
pub(super) fn list(context: &Context, peer: Peer) -> Result<Reply, Refusal> {
    let scope = scope(context, peer)?;
    Ok(Reply::Recordings(
        context
            .recordings
            .visible(scope)
            .iter()
            .map(|recording| recording.info())
            .collect(),
    ))
}

/// Stops one of the client's recordings (root: any) and reports it.
pub(super) async fn stop(context: &Context, peer: Peer, id: u64) -> Result<Reply, Refusal> {
    let scope = scope(context, peer)?;
    let recording = context
        .recordings
        .visible(scope)
        .into_iter()
        .find(|recording| recording.id == id)
        .ok_or(Refusal::NoSuchRecording { id })?;
    recording.stop().await;
    Ok(Reply::Recording(recording.info()))
}

fn scope(context: &Context, peer: Peer) -> Result<Scope, Refusal> {
    match grant(&context.state.policy().current(), &peer, Ask::Recordings)? {
        Grant::Scope(scope) => Ok(scope),
        _ => unreachable!("recordings are granted as a scope"),
    }
}
