//! Recordings: sessions the daemon writes to savefiles itself (pktd's file
//! mode). Each runs as a task of its own, independent of the connection
//! that started it, until its count, a quota, a write error, a stop
//! request, a policy reload that no longer allows it or daemon shutdown
//! ends it. Its records are drained like a capture's; the files are written
//! on blocking threads.
//!
//! | file | concern |
//! |---|---|
//! | `directory.rs` | a user's record directory, opened without following links |
//! | `allowance.rs` | disk allowances per principal |
//! | `files.rs` | a recording's savefiles: safe creation, rotation, limits |
//! | `pattern.rs` | the names those files get |
//! | `journal.rs` | what a restart needs to resume them |

mod allowance;
mod directory;
mod files;
mod journal;
mod pattern;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use pktd_pcap::savefile::{CaptureStats, Frame, PacketDirection};
use pktd_proto::{Direction, EndReason, RecordingInfo, RecordingRequest};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use self::{
    allowance::{Account, Accounts},
    directory::{DirectoryError, UserDirectory},
    files::{FilesConfig, FilesError, JournalFile, Kept, Limits, Savefiles, repair},
    journal::{Entry, Journal},
    pattern::{MAX_PATTERN_LEN, Pattern, PatternError},
};
use crate::{
    capture::Batch,
    errors,
    policy::{Ask, Grant, Peer, Scope, grant},
    session::Session,
    state::State,
    sync::{blocking, lock},
};

/// How often a recording rotates by time and looks at its quota, whatever
/// the traffic.
const TICK: Duration = Duration::from_millis(100);
/// Most ended recordings remembered for `--list`.
const KEEP_ENDED: usize = 64;

/// A recording, as its task and `--list` share it.
pub struct Recording {
    /// The daemon's id of the recording (its session's id).
    pub id: u64,
    /// Its owner.
    pub uid: u32,
    pattern: String,
    directory: String,
    status: Mutex<Status>,
    /// Cancelled to stop it.
    stop: CancellationToken,
    /// Cancelled once it has ended and its files are closed.
    done: CancellationToken,
}

#[derive(Default)]
struct Status {
    files: Vec<String>,
    packets: u64,
    bytes: u64,
    ended: Option<EndReason>,
}

impl Recording {
    /// What `--list` shows of it.
    pub fn info(&self) -> RecordingInfo {
        let status = lock(&self.status);
        RecordingInfo {
            id: self.id,
            uid: self.uid,
            pattern: self.pattern.clone(),
            directory: self.directory.clone(),
            files: status.files.clone(),
            packets: status.packets,
            bytes: status.bytes,
            ended: status.ended.clone(),
        }
    }

    /// Asks the recording to end and waits until it has.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.done.cancelled().await;
    }

    fn update(&self, files: &Savefiles) {
        let mut status = lock(&self.status);
        status.files = files.names();
        status.packets = files.packets();
        status.bytes = files.bytes();
    }
}

/// What a recording's task needs.
pub struct Start {
    /// Its session, opened.
    pub session: Session,
    /// Its files, the first one created.
    pub files: Savefiles,
    /// Its client, for the policy's re-checks.
    pub peer: Peer,
    /// What was asked, for the policy's re-checks.
    pub request: RecordingRequest,
    /// The daemon's state.
    pub state: Arc<State>,
    /// The daemon's shutdown.
    pub shutdown: CancellationToken,
    /// Policy changes, subscribed to before the recording was granted so
    /// that a reload during its opening is not missed.
    pub policy_changes: tokio::sync::watch::Receiver<u64>,
    /// The journal entry of the run before this one it goes on with:
    /// removed once its own is saved.
    pub resumed_from: Option<u64>,
}

/// Every recording of the daemon, running or recently ended.
#[derive(Default)]
pub struct Recordings {
    all: Mutex<HashMap<u64, Arc<Recording>>>,
    tasks: TaskTracker,
    accounts: Accounts,
    /// Where running recordings are kept for a restart; none: they end
    /// with the daemon.
    journal: Option<Arc<Journal>>,
}

impl Recordings {
    /// Recordings kept in `journal` for a restart (none: not kept).
    pub fn new(journal: Option<Journal>) -> Self {
        Self {
            journal: journal.map(Arc::new),
            ..Self::default()
        }
    }

    /// The journal, if recordings are kept.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.as_ref()
    }

    /// Starts a recording's task.
    pub fn start(&self, start: Start) -> Arc<Recording> {
        let recording = Arc::new(Recording {
            id: start.session.id(),
            uid: start.peer.uid,
            pattern: start.request.pattern.clone(),
            directory: start.files.directory().display().to_string(),
            status: Mutex::new(Status::default()),
            stop: CancellationToken::new(),
            done: CancellationToken::new(),
        });
        recording.update(&start.files);
        {
            let mut all = lock(&self.all);
            forget_old(&mut all);
            all.insert(recording.id, recording.clone());
        }
        tracing::info!(
            recording = recording.id,
            uid = recording.uid,
            pattern = recording.pattern,
            "recording started"
        );
        self.tasks
            .spawn(run(recording.clone(), start, self.journal.clone()));
        recording
    }

    /// The disk allowances of principals.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The recordings in `scope`, by id.
    pub fn visible(&self, scope: Scope) -> Vec<Arc<Recording>> {
        let mut visible: Vec<_> = lock(&self.all)
            .values()
            .filter(|recording| scope.covers(recording.uid))
            .cloned()
            .collect();
        visible.sort_by_key(|recording| recording.id);
        visible
    }

    /// Waits until every recording has ended (each ends on the daemon's
    /// shutdown by itself).
    pub async fn wait(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Drops the oldest ended recordings beyond KEEP_ENDED.
fn forget_old(all: &mut HashMap<u64, Arc<Recording>>) {
    let mut ended: Vec<u64> = all
        .values()
        .filter(|recording| lock(&recording.status).ended.is_some())
        .map(|recording| recording.id)
        .collect();
    if ended.len() > KEEP_ENDED {
        ended.sort_unstable();
        for id in &ended[..ended.len() - KEEP_ENDED] {
            all.remove(id);
        }
    }
}

/// What woke a recording's task.
enum Event {
    End(EndReason),
    PolicyChanged,
    Records,
    Tick,
}

/// A recording's task.
async fn run(recording: Arc<Recording>, start: Start, journal: Option<Arc<Journal>>) {
    // Whatever happens below, a panic included, the recording is seen to
    // have ended and whoever waits for it is released.
    let _done = recording.done.clone().drop_guard();
    let _ended = EndedOnUnwind(&recording);
    let Start {
        mut session,
        mut files,
        peer,
        request,
        state,
        shutdown,
        mut policy_changes,
        resumed_from,
    } = start;
    // A resumed recording keeps its entry (its id of the first run): one
    // entry per recording, whenever the daemon dies.
    let entry_id = resumed_from.unwrap_or(recording.id);
    let mut persisted = Persisted::new(journal, entry_id, &peer, &request, &files);
    persisted.save(&files).await;
    // Reused from one batch to the next.
    let mut batch = Batch::default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason = loop {
        let event = tokio::select! {
            biased;
            _ = recording.stop.cancelled() => Event::End(EndReason::Stopped),
            _ = shutdown.cancelled() => Event::End(EndReason::DaemonShutdown),
            _ = policy_changes.changed() => Event::PolicyChanged,
            // Before the records: under steady traffic the tick must still
            // come (rotation by time, quotas).
            _ = tick.tick() => Event::Tick,
            ready = session.ready() => match ready {
                Ok(()) => Event::Records,
                Err(err) => Event::End(EndReason::Error(format!("ring buffer: {err}"))),
            },
        };
        let outcome = match event {
            Event::End(reason) => Err(reason),
            Event::PolicyChanged => {
                let reapplied;
                (files, reapplied) =
                    reapply(&recording, &state, &peer, &request, &mut session, files).await;
                reapplied
            }
            Event::Records => {
                // A recording's ring is always the daemon's to drain.
                let Some(drain) = session.drain() else {
                    continue;
                };
                drain.take(&mut batch).await;
                if batch.is_empty() {
                    continue;
                }
                let written;
                (files, batch, written) = blocking(move || {
                    let written = write(&mut files, &batch);
                    (files, batch, written)
                })
                .await;
                written.and_then(|()| {
                    if session.drain().is_some_and(|drain| drain.count_reached()) {
                        Err(EndReason::CountReached)
                    } else {
                        Ok(())
                    }
                })
            }
            Event::Tick => {
                let stats = capture_stats(&session);
                let rotated;
                (files, rotated) = blocking(move || {
                    if let Some(stats) = stats {
                        files.set_statistics(stats);
                    }
                    let rotated = files.tick(Instant::now());
                    (files, rotated)
                })
                .await;
                rotated
                    .map_err(|err| EndReason::Error(errors::chain(&err)))
                    .and_then(|()| session.quota_end().map_or(Ok(()), Err))
            }
        };
        recording.update(&files);
        persisted.save(&files).await;
        if let Err(reason) = outcome {
            break reason;
        }
    };
    if let Some(stats) = capture_stats(&session) {
        files.set_statistics(stats);
    }
    session.close().await;
    let reason = finish(&recording, files, reason).await;
    // Shut down, it goes on at the next start; any other end is for good.
    if reason != EndReason::DaemonShutdown {
        persisted.forget().await;
    }
    tracing::info!(recording = recording.id, %reason, "recording ended");
    lock(&recording.status).ended = Some(reason);
}

/// A recording's entry in the journal, saved whenever its files change.
struct Persisted {
    journal: Option<Arc<Journal>>,
    id: u64,
    owner: (u32, u32),
    request: RecordingRequest,
    directory: std::path::PathBuf,
    /// The files' state last saved: (files on disk, next number).
    saved: Option<(usize, u64)>,
}

impl Persisted {
    fn new(
        journal: Option<Arc<Journal>>,
        id: u64,
        peer: &Peer,
        request: &RecordingRequest,
        files: &Savefiles,
    ) -> Self {
        Self {
            journal,
            id,
            owner: (peer.uid, peer.gid),
            request: request.clone(),
            directory: files.principal_directory().to_owned(),
            saved: None,
        }
    }

    /// Saves the entry if the files changed since the last save (a
    /// rotation, a deletion). A failure is logged: the recording goes on,
    /// but would not survive a restart as it is now.
    async fn save(&mut self, files: &Savefiles) {
        let Some(journal) = self.journal.clone() else {
            return;
        };
        let (names, next_index) = files.journal();
        let state = (names.len(), next_index);
        if self.saved == Some(state) {
            return;
        }
        let entry = Entry::new(
            self.owner,
            self.request.clone(),
            self.directory.clone(),
            (names, next_index),
        );
        let id = self.id;
        match blocking(move || journal.save(id, &entry)).await {
            Ok(()) => self.saved = Some(state),
            // Tried again at the next change of the files.
            Err(err) => {
                tracing::warn!(recording = id, %err, "cannot keep the recording in the journal")
            }
        }
    }

    /// Removes the entry: the recording has ended for good.
    async fn forget(&self) {
        if let Some(journal) = self.journal.clone() {
            let id = self.id;
            blocking(move || journal.remove(id)).await;
        }
    }
}

/// The session's counters now, as a pcapng file's statistics block
/// says them.
fn capture_stats(session: &Session) -> Option<CaptureStats> {
    // The counters alone: the interface's own count is not wanted here.
    let stats = crate::session::stats(
        &session.counters().ok()?,
        session.grant().policy_filter.is_some(),
    );
    Some(CaptureStats {
        timestamp_ns: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64),
        received: stats.received,
        dropped: stats.dropped,
        matched: stats.matched,
        delivered: stats.delivered,
    })
}

/// Marks a recording ended with an error if its task unwinds before it
/// could say why it ended.
struct EndedOnUnwind<'a>(&'a Recording);

impl Drop for EndedOnUnwind<'_> {
    fn drop(&mut self) {
        let mut status = lock(&self.0.status);
        if status.ended.is_none() {
            status.ended = Some(EndReason::Error("the recording task failed".to_owned()));
        }
    }
}

/// Writes `batch` to `files`, with one write to the file unless it
/// rotates. Blocking.
fn write(files: &mut Savefiles, batch: &Batch) -> Result<(), EndReason> {
    files
        .write_batch(batch.packets().map(|packet| Frame {
            timestamp_ns: packet.timestamp_ns,
            wire_len: packet.wire_len,
            direction: match packet.direction {
                Direction::Out => PacketDirection::Outbound,
                _ => PacketDirection::Inbound,
            },
            data: packet.data,
        }))
        .map_err(|err| EndReason::Error(errors::chain(&err)))
}

/// Puts the recording under the policy in force: its new rules (the disk
/// allowance applied at once, deleting its oldest files as needed), or
/// `Err` with its end if the policy no longer allows it or moved its
/// directory. The files come back with the outcome.
async fn reapply(
    recording: &Recording,
    state: &State,
    peer: &Peer,
    request: &RecordingRequest,
    session: &mut Session,
    mut files: Savefiles,
) -> (Savefiles, Result<(), EndReason>) {
    let revoked = |why: &dyn std::fmt::Display| {
        tracing::info!(recording = recording.id, reason = %why, "policy revoked a recording");
        Err(EndReason::PolicyRevoked)
    };
    let granted = match grant(&state.policy().current(), peer, Ask::Recording(request)) {
        Ok(Grant::Recording(granted)) => granted,
        Ok(_) => unreachable!("a recording is granted as a recording"),
        Err(denied) => return (files, revoked(&denied)),
    };
    if granted.directory != files.principal_directory() {
        let moved = format!(
            "the record directory is now {}",
            granted.directory.display()
        );
        return (files, revoked(&moved));
    }
    match session.apply(granted.capture).await {
        Ok(()) => {}
        Err(err) if err.ends_as().is_some() => {
            tracing::info!(recording = recording.id, reason = %err, "the reloaded policy ends a recording");
            return (
                files,
                Err(err.ends_as().unwrap_or(EndReason::PolicyRevoked)),
            );
        }
        Err(err) => return (files, Err(EndReason::Error(errors::chain(&err)))),
    }
    blocking(move || {
        let fitted = files.set_disk_allowance(granted.disk_allowance);
        (
            files,
            fitted.map_err(|err| EndReason::Error(errors::chain(&err))),
        )
    })
    .await
}

/// Closes the files and records what is left of them; the end reason,
/// with a failure to close added.
async fn finish(recording: &Recording, files: Savefiles, reason: EndReason) -> EndReason {
    let (names, packets, bytes) = (files.names(), files.packets(), files.bytes());
    let closed = blocking(move || files.finish()).await;
    {
        let mut status = lock(&recording.status);
        status.files = names;
        status.packets = packets;
        status.bytes = bytes;
    }
    match closed {
        Ok(_) => reason,
        Err(err) => EndReason::Error(format!(
            "{reason}; closing the file: {}",
            errors::chain(&err)
        )),
    }
}
