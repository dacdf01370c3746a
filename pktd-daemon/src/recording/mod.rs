//! Recordings: captures the daemon writes to disk itself (pktd's file
//! mode). Each runs on its own thread, independent of the connection that
//! started it, until its count, quota, a write error, a stop request or
//! daemon shutdown ends it.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use pktd_proto::{RecordingInfo, Stats};
use tokio_util::sync::CancellationToken;

use crate::{
    capture::Client,
    record::Recorder,
    registry::{Registry, SlotRef},
    session::{error_chain, lock},
};

/// How long the thread sleeps when the ring is empty. Records wait in the
/// kernel ring meanwhile; a recording trades this latency for simplicity.
const IDLE: Duration = Duration::from_millis(10);
/// Most ended recordings remembered for `--list`.
const KEEP_ENDED: usize = 64;

/// A recording's shared state.
pub(crate) struct Recording {
    pub id: u64,
    pub uid: u32,
    pattern: String,
    directory: String,
    stop: AtomicBool,
    status: Mutex<Status>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Status {
    files: Vec<String>,
    packets: u64,
    bytes: u64,
    ended: Option<String>,
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
    pub fn stop_and_wait(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

/// Every recording of the daemon, running or recently ended.
#[derive(Default)]
pub(crate) struct Recordings {
    all: Mutex<HashMap<u64, Arc<Recording>>>,
}

/// What a recording thread needs besides its recorder.
pub(crate) struct Start {
    pub id: u64,
    pub uid: u32,
    pub pattern: String,
    pub directory: String,
    pub client: Client,
    pub slot: SlotRef,
    pub packet_count: u64,
    pub registry: Arc<Registry>,
    pub shutdown: CancellationToken,
    /// Called once when the recording has ended and released its slot.
    pub on_end: Box<dyn FnOnce() + Send>,
    /// Asked after every policy reload: why the policy no longer allows
    /// the recording, if it does not.
    pub revoked: Box<dyn Fn() -> Option<String> + Send>,
    /// The policy's generation now (see `PolicyStore::generation`).
    pub policy_generation: Box<dyn Fn() -> u64 + Send>,
}

impl Recordings {
    /// Starts a recording thread writing `start.client`'s records with
    /// `recorder`.
    pub fn start(&self, start: Start, recorder: Recorder) -> Arc<Recording> {
        let recording = Arc::new(Recording {
            id: start.id,
            uid: start.uid,
            pattern: start.pattern.clone(),
            directory: start.directory.clone(),
            stop: AtomicBool::new(false),
            status: Mutex::new(Status {
                files: file_names(&recorder),
                ..Status::default()
            }),
            thread: Mutex::new(None),
        });
        let thread = {
            let recording = recording.clone();
            std::thread::Builder::new()
                .name(format!("pktd-record-{}", start.id))
                .spawn(move || run(recording, start, recorder))
                .expect("spawning a recording thread")
        };
        *lock(&recording.thread) = Some(thread);
        let mut all = lock(&self.all);
        forget_old(&mut all);
        all.insert(recording.id, recording.clone());
        recording
    }

    /// The recordings `uid` may see (root: all), by id.
    pub fn visible_to(&self, uid: u32) -> Vec<Arc<Recording>> {
        let mut visible: Vec<_> = lock(&self.all)
            .values()
            .filter(|recording| uid == 0 || recording.uid == uid)
            .cloned()
            .collect();
        visible.sort_by_key(|recording| recording.id);
        visible
    }

    /// Stops every recording and waits for them (shutdown).
    pub fn stop_all(&self) {
        let all: Vec<_> = lock(&self.all).values().cloned().collect();
        for recording in all {
            recording.stop_and_wait();
        }
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

fn file_names(recorder: &Recorder) -> Vec<String> {
    recorder
        .files()
        .iter()
        .filter_map(|path| path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

/// The recording thread.
fn run(recording: Arc<Recording>, start: Start, mut recorder: Recorder) {
    let Start {
        mut client,
        slot,
        packet_count,
        registry,
        shutdown,
        on_end,
        revoked,
        policy_generation,
        ..
    } = start;
    let mut generation = policy_generation();
    let reason = loop {
        if recording.stop.load(Ordering::SeqCst) {
            break "stopped".to_owned();
        }
        if policy_generation() != generation {
            generation = policy_generation();
            if let Some(why) = revoked() {
                break format!("revoked by the policy: {why}");
            }
        }
        if shutdown.is_cancelled() {
            break "daemon shutdown".to_owned();
        }
        let mut wrote = 0u64;
        let mut failure = None;
        while let Some(record) = client.next_record() {
            if let Err(err) = recorder.write(record.timestamp_ns, record.wire_len, &record.data) {
                failure = Some(error_chain(&err));
                break;
            }
            wrote += 1;
            if packet_count != 0 && recorder.packets() >= packet_count {
                break;
            }
        }
        if let Some(failure) = failure {
            break failure;
        }
        if let Err(err) = recorder.tick(Instant::now()) {
            break error_chain(&err);
        }
        {
            let mut status = lock(&recording.status);
            status.packets = recorder.packets();
            status.bytes = recorder.bytes();
            status.files = file_names(&recorder);
        }
        if packet_count != 0 && recorder.packets() >= packet_count {
            break "count reached".to_owned();
        }
        if wrote == 0 {
            // The kernel counts refusals; nothing more will come.
            if let Ok(counters) = registry.counters(&slot)
                && counters.over_quota > 0
                && counters.delivered <= recorder.packets()
            {
                break quota_reason(&counters);
            }
            std::thread::sleep(IDLE);
        }
    };
    registry.remove_client(&slot);
    let files = file_names(&recorder);
    let (packets, bytes) = (recorder.packets(), recorder.bytes());
    let reason = match recorder.finish() {
        Ok(_) => reason,
        Err(err) => format!("{reason}; closing the file: {}", error_chain(&err)),
    };
    tracing::info!(recording = recording.id, reason, packets, "recording ended");
    {
        let mut status = lock(&recording.status);
        status.files = files;
        status.packets = packets;
        status.bytes = bytes;
        status.ended = Some(reason);
    }
    on_end();
}

fn quota_reason(counters: &pktd_common::ClientCounters) -> String {
    let stats = Stats {
        received: counters.seen,
        matched: counters.matched,
        delivered: counters.delivered,
        dropped: counters.dropped,
        over_quota: counters.over_quota,
    };
    format!(
        "quota reached ({} packets delivered, {} refused)",
        stats.delivered, stats.over_quota
    )
}
