//! Recording requests: start one (the daemon writes the files; it goes on
//! after the connection), list them, stop one.

use std::{os::unix::fs::DirBuilderExt, sync::Arc};

use pktd_pcap::savefile::Format;
use pktd_proto::{RecordingRequest, Reply};

use super::{context::Context, refusal::Refusal};
use crate::{
    policy::{Ask, Grant, Peer, Scope, grant},
    recording::{FilesConfig, Limits, Pattern, Savefiles, Start},
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
    let config = FilesConfig {
        directory: granted.directory.clone(),
        pattern: Pattern::parse(&request.pattern)?,
        limits: Limits::from(&request.rotation),
        format: if request.pcapng {
            Format::PcapNg
        } else {
            Format::Pcap
        },
        snaplen: granted.capture.spec.snaplen,
        disk_allowance: granted.disk_allowance,
        owner: Some(granted.owner),
    };
    let filter = (request.capture.filter.clone(), request.capture.optimize);
    // The first file before the slot: a refused name attaches nothing.
    let (session, files) = session::open(
        state,
        peer,
        granted.capture,
        filter,
        request.capture.packet_count,
        move || create_files(config),
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

/// Creates the directory if missing and the recording's first file.
/// Blocking.
fn create_files(config: FilesConfig) -> Result<Savefiles, Refusal> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&config.directory)
        .map_err(|source| Refusal::RecordDirectory {
            path: config.directory.clone(),
            source,
        })?;
    Ok(Savefiles::create(config)?)
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
