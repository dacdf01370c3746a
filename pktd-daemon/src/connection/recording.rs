//! Recording requests: start one (the daemon writes the files; it goes on
//! after the connection), list them, stop one.

use std::{path::PathBuf, sync::Arc};

use pktd_pcap::savefile::{CaptureInfo, Format};
use pktd_proto::{ErrorCode, FilterSpec, RecordingRequest, Reply};

use super::{context::Context, refusal::Refusal};
use crate::{
    policy::{Ask, Grant, Peer, Scope, grant},
    recording::{
        DirectoryError, FilesConfig, JournalFile, Limits, Pattern, Recording, Recordings,
        Savefiles, Start, UserDirectory, repair,
    },
    session,
    sync::blocking,
};

/// Starts a recording into the principal's directory.
pub(super) async fn start(
    context: &Arc<Context>,
    peer: Peer,
    request: RecordingRequest,
) -> Result<Reply, Refusal> {
    let recording = begin(context, peer, request, None).await?;
    Ok(Reply::Recording(recording.info()))
}

/// A recording of an earlier run, as its journal entry says.
struct Resume {
    /// The id it had (its entry's).
    id: u64,
    /// The principal's record directory it was in.
    directory: PathBuf,
    files: Vec<JournalFile>,
    next_index: u64,
}

/// Starts a recording, or goes on with one of an earlier run: granted by
/// the policy in force either way.
async fn begin(
    context: &Arc<Context>,
    peer: Peer,
    request: RecordingRequest,
    resume: Option<Resume>,
) -> Result<Arc<Recording>, Refusal> {
    let state = &context.state;
    let policy_changes = state.policy().subscribe();
    let Grant::Recording(granted) =
        grant(&state.policy().current(), &peer, Ask::Recording(&request))?
    else {
        unreachable!("a recording is granted as a recording");
    };
    let pattern = Pattern::parse(&request.pattern)?;
    if let Some(resume) = &resume
        && resume.directory != granted.directory
    {
        // As a reload that moves it ends a running recording.
        return Err(Refusal::RecordDirectoryMoved {
            directory: granted.directory.clone(),
        });
    }
    let resumed_from = resume.as_ref().map(|resume| resume.id);
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
        resume,
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
    Ok(context.recordings.start(Start {
        session,
        files,
        peer,
        request,
        state: state.clone(),
        shutdown: context.shutdown.clone(),
        policy_changes,
        resumed_from,
    }))
}

/// The journal entries of the run before, and the new run's ids made to
/// start past them (a new recording must never take an old one's entry).
/// Call it before the first client is accepted.
pub async fn journaled(context: &Arc<Context>) -> Vec<u64> {
    let Some(journal) = context.recordings.journal().cloned() else {
        return Vec::new();
    };
    let (ids, largest) = match blocking({
        let journal = journal.clone();
        move || journal.ids()
    })
    .await
    {
        Ok(ids) => ids,
        Err(err) => {
            tracing::error!(path = %journal.path().display(), %err, "cannot read the journal");
            return Vec::new();
        }
    };
    if let Some(largest) = largest {
        context.state.skip_ids_below(largest.saturating_add(1));
    }
    ids
}

/// Goes on with the recordings `ids` the journal kept from the run before
/// (a restart, a crash): each is granted again by the policy in force and
/// continues its numbering in its directory, after its last file was cut
/// back to its last whole record. One the policy no longer grants, or
/// whose files cannot go on, ends: its files are repaired all the same,
/// and its entry removed. Runs beside the clients (repairs read files
/// their users can make long), one recording at a time.
pub async fn resume(context: &Arc<Context>, ids: Vec<u64>) {
    let Some(journal) = context.recordings.journal().cloned() else {
        return;
    };
    for id in ids {
        if context.shutdown.is_cancelled() {
            return;
        }
        let entry = match blocking({
            let journal = journal.clone();
            move || journal.entry(id)
        })
        .await
        {
            Ok(entry) => entry,
            Err(err) => {
                tracing::error!(entry = id, %err, "a journal entry that cannot be read is left");
                continue;
            }
        };
        let peer = Peer {
            uid: entry.uid,
            gid: entry.gid,
            pid: 0,
        };
        let resume = Resume {
            id,
            directory: entry.directory.clone(),
            files: entry.files.clone(),
            next_index: entry.next_index,
        };
        match begin(context, peer, entry.request.clone(), Some(resume)).await {
            Ok(recording) => tracing::info!(
                recording = recording.id,
                earlier = id,
                uid = entry.uid,
                "recording resumed"
            ),
            Err(refusal) => {
                // A namespace or interface not there yet (at boot), the
                // limits full: the entry stays for the next start. What
                // the policy or the files refuse ends the recording.
                let lasting = !matches!(
                    ErrorCode::from(&refusal),
                    ErrorCode::NoSuchInterface
                        | ErrorCode::NoSuchNetns
                        | ErrorCode::Limit
                        | ErrorCode::Internal
                );
                let journal = journal.clone();
                let uid = entry.uid;
                blocking(move || {
                    let directory = UserDirectory::open(&entry.directory, entry.uid, entry.gid);
                    match (directory, Pattern::parse(&entry.request.pattern)) {
                        (Ok(directory), Ok(pattern)) => drop(repair(
                            &directory,
                            &entry.files,
                            &pattern,
                            entry.next_index,
                            entry.uid,
                        )),
                        (Err(err), _) => {
                            tracing::warn!(%err, "cannot open the recording's directory")
                        }
                        (_, Err(err)) => tracing::warn!(%err, "the journal's pattern"),
                    }
                    if lasting {
                        journal.remove(id);
                    }
                })
                .await;
                tracing::warn!(
                    earlier = id,
                    uid,
                    reason = %refusal,
                    kept_for_the_next_start = !lasting,
                    "a recording of the run before cannot go on; its files were repaired"
                );
            }
        }
    }
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
    /// What is left of the recording, when it goes on from an earlier run.
    resume: Option<Resume>,
}

/// Opens (making what is missing) the user's record directory, the
/// principal's disk allowance, and the recording's first file (after
/// repairing what is left, when it resumes). Blocking.
fn create_files(recordings: &Recordings, files: FilesRequest) -> Result<Savefiles, Refusal> {
    let (uid, gid) = files.owner;
    let directory = UserDirectory::open(&files.base, uid, gid)?;
    // Repaired first, so that the account measures the files as they stay.
    let kept = files.resume.as_ref().map(|resume| {
        repair(
            &directory,
            &resume.files,
            &files.pattern,
            resume.next_index,
            uid,
        )
    });
    let account = recordings
        .accounts()
        .get(&files.principal, &files.base, files.allowance)
        .map_err(|source| DirectoryError::Io {
            operation: "measure",
            path: files.base.clone(),
            source,
        })?;
    let config = FilesConfig {
        directory: Arc::new(directory),
        pattern: files.pattern,
        limits: files.limits,
        format: files.format,
        snaplen: files.snaplen,
        info: files.info,
        account,
        owner: Some(files.owner),
    };
    Ok(match kept {
        Some((kept, next_index)) => Savefiles::resume(config, kept, next_index)?,
        None => Savefiles::create(config)?,
    })
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
