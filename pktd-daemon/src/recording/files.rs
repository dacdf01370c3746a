//! A recording's files: a client's capture written to savefiles in its
//! user's record directory, rotating by time, size or packet count, and
//! keeping within a file count and its principal's disk allowance.
//!
//! The daemon runs as root and the directory belongs to an unprivileged
//! user, who may plant symlinks or swap files at any time. So:
//!
//! - files are made and deleted relative to the directory, held open since
//!   it was checked ([`UserDirectory`]), never through a path;
//! - file names come only from a validated [`Pattern`] (no `/`, no leading
//!   `.` or `-`, never used as a format string);
//! - every file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`: an existing
//!   name, symlink or not, is never opened, followed or overwritten, and the
//!   recording fails with [`FilesError::Exists`] instead of skipping it;
//! - only files of this recording are ever deleted, and only while the name
//!   still refers to the regular file created (same device and inode);
//!   anything else is left alone and forgotten.
//!
//! Files end at a whole packet: packets are kept in memory and written
//! together, with one `write_all`, when the daemon has written a batch
//! ([`Savefiles::flush`]) or [`FLUSH_AT`] bytes are waiting; when that
//! fails (`ENOSPC` included) the file is truncated back to the size it had
//! before, the packets of the failed write are no longer counted, and the
//! recording ends.

use std::{
    fs::File,
    io::{self, Write},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use pktd_pcap::savefile::{
    self, CaptureInfo, CaptureStats, Format, Frame, LINKTYPE_ETHERNET, PacketDirection,
    append_record,
};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::{
    allowance::Account,
    directory::UserDirectory,
    pattern::{self, Pattern},
};

/// The permissions of every file created.
const FILE_MODE: u32 = 0o640;

/// Errors of a recording's files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// A limit makes no sense (a zero limit).
    #[error("invalid rotation: {reason}")]
    Limits {
        /// Why it was refused.
        reason: &'static str,
    },
    /// The next file exists already (a file, a symlink, anything): it is
    /// never overwritten nor followed, and numbers are never skipped.
    #[error("{path} exists already (a recording never overwrites nor follows a file)")]
    Exists {
        /// The file that would have been created.
        path: PathBuf,
    },
    /// A system call failed.
    #[error("cannot {operation} {path}")]
    Io {
        /// What was being done, for example "write a packet to".
        operation: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing would exceed the principal's disk allowance even with every
    /// older file of the recording deleted.
    #[error(
        "the disk allowance of {allowance} bytes is used up: the principal's recordings would take {needed} bytes with {path}"
    )]
    DiskAllowance {
        /// The allowance, in bytes.
        allowance: u64,
        /// What the current file would take with the new packet.
        needed: u64,
        /// The current file.
        path: PathBuf,
    },
    /// The recording has ended (after an error, or before any file exists).
    #[error("the recording has ended")]
    Finished,
}

/// When to start a new file, and how many to keep. `None` means no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Start a new file when the current one is this old (checked on every
    /// packet and by [`Savefiles::tick`], so files are made even without
    /// traffic).
    pub seconds: Option<Duration>,
    /// Start a new file when the next packet would make the current one
    /// larger than this (a file always gets at least one packet).
    pub bytes: Option<u64>,
    /// Start a new file when the current one has this many packets.
    pub packets: Option<u64>,
    /// Keep at most this many files of the recording: a rotation that would
    /// exceed it deletes the oldest (like tcpdump `-W`, but deleting rather
    /// than overwriting).
    pub max_files: Option<u32>,
}

impl From<&pktd_proto::Rotation> for Limits {
    /// A client's rotation request, where 0 means no limit.
    fn from(rotation: &pktd_proto::Rotation) -> Self {
        Self {
            seconds: (rotation.seconds != 0)
                .then(|| Duration::from_secs(u64::from(rotation.seconds))),
            bytes: (rotation.bytes != 0).then_some(rotation.bytes),
            packets: (rotation.packets != 0).then_some(rotation.packets),
            max_files: (rotation.max_files != 0).then_some(rotation.max_files),
        }
    }
}

/// What [`Savefiles`] write, where and within what limits.
#[derive(Clone, Debug)]
pub struct FilesConfig {
    /// The user's record directory, held open.
    pub directory: Arc<UserDirectory>,
    /// The file names.
    pub pattern: Pattern,
    /// When to rotate.
    pub limits: Limits,
    /// pcap or pcapng.
    pub format: Format,
    /// The most bytes kept of each packet (0: all).
    pub snaplen: u32,
    /// What a pcapng file says of the capture (interface, namespace,
    /// filter).
    pub info: CaptureInfo,
    /// The principal's disk allowance, shared by all of its recordings:
    /// this recording's oldest files are deleted to make room (never the
    /// current one); when that is not enough, the recording ends with
    /// [`FilesError::DiskAllowance`].
    pub account: Arc<Account>,
    /// Who owns the files (uid, gid): the client that asked for the
    /// recording, so that it can read them. Set on the open descriptor
    /// (fchown), never through the path.
    pub owner: Option<(u32, u32)>,
}

/// Bytes of packets kept in memory before they are written, whether or
/// not the daemon's batch is over.
const FLUSH_AT: usize = 1 << 20;

/// A file being written: its header, its packets' records (laid out in
/// place) and its closing block wait in memory, each a piece of its own,
/// until [`Output::write_pending`].
#[derive(Debug)]
struct Output {
    file: File,
    format: Format,
    snaplen: u32,
    pending: Vec<u8>,
    /// Where each piece given ends in `pending`.
    ends: Vec<usize>,
    /// Bytes in the file.
    written: u64,
}

/// A write of what was pending that failed after `whole` of its pieces
/// (packets) reached the file.
#[derive(Debug)]
struct PartialWrite {
    error: io::Error,
    whole: usize,
}

impl Output {
    fn new(file: File, format: Format, snaplen: u32) -> Self {
        Self {
            file,
            format,
            snaplen,
            pending: Vec::new(),
            ends: Vec::new(),
            written: 0,
        }
    }

    /// Asks the kernel to put the file's data on the disk (at rotation
    /// and close: a file ended is whole even if the machine is not).
    fn sync(&self) {
        if let Err(err) = self.file.sync_data() {
            tracing::warn!(%err, "syncing a recorded file");
        }
    }

    /// The file's size once what is pending is written.
    fn size(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Adds a packet's record; nothing when it is refused (a timestamp
    /// pcap cannot hold).
    fn append_packet(&mut self, frame: &Frame<'_>) -> io::Result<()> {
        append_record(self.format, self.snaplen, frame, &mut self.pending)?;
        self.ends.push(self.pending.len());
        Ok(())
    }

    /// Adds bytes that are one piece of their own (the header, the
    /// statistics).
    fn append_block(&mut self, block: &[u8]) {
        self.pending.extend_from_slice(block);
        self.ends.push(self.pending.len());
    }

    /// Writes what is pending. When the file takes only part of it
    /// (`ENOSPC`), the file is cut back to the last whole piece it took.
    fn write_pending(&mut self) -> Result<(), PartialWrite> {
        let mut done = 0;
        let mut failed = None;
        while done < self.pending.len() {
            match (&self.file).write(&self.pending[done..]) {
                Ok(0) => {
                    failed = Some(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => done += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        let result = match failed {
            None => {
                self.written += done as u64;
                Ok(())
            }
            Some(error) => {
                let whole = self.ends.partition_point(|&end| end <= done);
                let kept = whole.checked_sub(1).map_or(0, |last| self.ends[last]);
                self.written += kept as u64;
                if kept != done
                    && let Err(truncate) = self.file.set_len(self.written)
                {
                    tracing::error!(error = %truncate, "cannot cut off a partly written packet");
                }
                Err(PartialWrite { error, whole })
            }
        };
        self.pending.clear();
        self.ends.clear();
        result
    }
}

/// A file of the recording, as its journal names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JournalFile {
    /// Its name in the user's directory (made by the recording's pattern).
    pub name: String,
    /// The device and inode it was created as: a file of that name that is
    /// another one is not the recording's.
    pub dev: u64,
    /// See `dev`.
    pub ino: u64,
}

/// A file [`repair`] found to be the recording's, for
/// [`Savefiles::resume`].
#[derive(Debug)]
pub struct Kept {
    name: String,
    id: FileId,
}

/// How far past the journal's next number [`repair`] looks for files a
/// kill left unjournaled (one batch may rotate more than once).
const UNJOURNALED_WINDOW: u64 = 64;

/// How long [`repair`] may scan a file for its last whole record: a file
/// its owner made huge is left as it is rather than hold up the daemon.
const SCAN_FOR: Duration = Duration::from_secs(2);

/// Looks at the files a journal names, after the daemon stopped without
/// closing them: those gone or replaced (another file, a link, another
/// inode) are forgotten and left alone; the last one, the file being
/// written, is cut back to its last whole record (a write cut short by
/// SIGKILL or a crash), or forgotten when not even its header is whole.
///
/// The journal is saved after its recording's files change, so a daemon
/// killed in between made files it does not name: within the next
/// numbers, regular files of `owner` with one link are taken too (never
/// another user's file, never a hard link to one), and the next file's
/// number goes past every name there (the next file is never one that
/// exists). Returns the files kept and the next file's number. Blocking:
/// it reads the last file's record headers, for [`SCAN_FOR`] at most.
pub fn repair(
    directory: &UserDirectory,
    journaled: &[JournalFile],
    pattern: &Pattern,
    next_index: u64,
    owner: u32,
) -> (Vec<Kept>, u64) {
    let mut files = journaled.to_vec();
    let mut next = next_index;
    for index in next_index..next_index.saturating_add(UNJOURNALED_WINDOW) {
        let name = pattern.file_name(index);
        match rustix::fs::statat(directory.fd(), name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => {
                next = index + 1;
                if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
                    && stat.st_uid == owner
                    && stat.st_nlink == 1
                {
                    files.push(JournalFile {
                        name,
                        dev: stat.st_dev,
                        ino: stat.st_ino,
                    });
                }
            }
            Err(_) => continue,
        }
    }
    let give_up_at = Instant::now() + SCAN_FOR;
    let mut kept = Vec::new();
    for (position, file) in files.iter().enumerate() {
        if !pattern::is_plain_name(&file.name) {
            tracing::warn!(name = file.name, "a journal names a file no pattern makes");
            continue;
        }
        let path = directory.path().join(&file.name);
        let expected = FileId {
            dev: file.dev,
            ino: file.ino,
            size: 0,
        };
        let size = if position + 1 == files.len() {
            cut_to_whole(directory, &path, &file.name, expected, give_up_at)
        } else {
            ours(directory, &file.name, expected)
        };
        match size {
            Ok(Some(size)) => kept.push(Kept {
                name: file.name.clone(),
                id: FileId { size, ..expected },
            }),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "a recorded file left as it is");
                // Still the recording's, whole or not: it counts.
                if let Ok(Some(size)) = ours(directory, &file.name, expected) {
                    kept.push(Kept {
                        name: file.name.clone(),
                        id: FileId { size, ..expected },
                    });
                }
            }
        }
    }
    (kept, next)
}

/// The size of `name` if it is still the regular file `id`.
fn ours(directory: &UserDirectory, name: &str, id: FileId) -> io::Result<Option<u64>> {
    match rustix::fs::statat(directory.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat)
            if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
                && stat.st_dev == id.dev
                && stat.st_ino == id.ino =>
        {
            Ok(Some(stat.st_size as u64))
        }
        Ok(_) | Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(errno) => Err(errno.into()),
    }
}

/// Cuts `name`, if it is still the file `id`, to its last whole record;
/// its size then (`None`: not the file, or without a whole header: left
/// as it is, and no longer the recording's).
fn cut_to_whole(
    directory: &UserDirectory,
    path: &Path,
    name: &str,
    id: FileId,
    give_up_at: Instant,
) -> io::Result<Option<u64>> {
    // Never follows a link, never waits on a FIFO put there.
    let file = match rustix::fs::openat(
        directory.fd(),
        name,
        OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => File::from(fd),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP) => return Ok(None),
        Err(errno) => return Err(errno.into()),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.dev() != id.dev || meta.ino() != id.ino {
        return Ok(None);
    }
    match savefile::whole_prefix_len(&file, give_up_at)? {
        Some(whole) if whole == meta.len() => Ok(Some(whole)),
        Some(whole) => {
            tracing::info!(
                path = %path.display(),
                from = meta.len(),
                to = whole,
                "cut a recorded file back to its last whole record"
            );
            file.set_len(whole)?;
            file.sync_data()?;
            Ok(Some(whole))
        }
        None => {
            tracing::warn!(
                path = %path.display(),
                "a recorded file without a whole header is left as it is"
            );
            Ok(None)
        }
    }
}

/// A file of the recording that is still on disk.
#[derive(Debug, Clone, Copy)]
struct FileId {
    dev: u64,
    ino: u64,
    /// Its size as written.
    size: u64,
}

/// The file being written.
#[derive(Debug)]
struct Current {
    output: Output,
    opened: Instant,
    /// Packets given to it, and of those, written to the file.
    packets: u64,
    written_packets: u64,
}

impl Current {
    /// Its size, counting the packets still in memory.
    fn size(&self) -> u64 {
        self.output.size()
    }

    fn pending(&self) -> u64 {
        self.output.pending() as u64
    }
}

/// A recording's files: packets written to a sequence of savefiles.
#[derive(Debug)]
pub struct Savefiles {
    config: FilesConfig,
    /// The files still on disk, oldest first; the last is the current one.
    paths: Vec<PathBuf>,
    /// Parallel to `paths`.
    ids: Vec<FileId>,
    /// `None` once the recording has ended.
    current: Option<Current>,
    next_index: u64,
    packets: u64,
    bytes: u64,
    /// Every file's header (made once: pcapng's names the system).
    header: Vec<u8>,
    /// The capture's counters, for the statistics block a pcapng file
    /// ends with.
    statistics: Option<CaptureStats>,
}

impl Savefiles {
    /// Checks the configuration and creates the first file (number 0).
    pub fn create(config: FilesConfig) -> Result<Self, FilesError> {
        let mut files = Self::new(config)?;
        files.fit(files.header_len(), &files.next_path())?;
        files.open_next(Instant::now())?;
        Ok(files)
    }

    /// Goes on with a recording the daemon was writing when it stopped
    /// (killed, or shut down), from what its journal kept: the files still
    /// there that are the ones it made ([`repair`] them first) count
    /// toward `max_files` and are deleted oldest first as before, and the
    /// next file takes the next number.
    pub fn resume(
        config: FilesConfig,
        kept: Vec<Kept>,
        next_index: u64,
    ) -> Result<Self, FilesError> {
        let mut files = Self::new(config)?;
        for Kept { name, id } in kept {
            files.paths.push(files.directory().join(name));
            files.ids.push(id);
        }
        files.next_index = next_index;
        // Room first, as a rotation makes it: the oldest files go to keep
        // within max_files (counting the one to come) and the allowance.
        if let Some(max) = files.config.limits.max_files {
            while files.paths.len() >= max as usize {
                files.delete_oldest()?;
            }
        }
        while !files.config.account.fits(files.header_len()) && !files.paths.is_empty() {
            files.delete_oldest()?;
        }
        files.fit(files.header_len(), &files.next_path())?;
        files.open_next(Instant::now())?;
        Ok(files)
    }

    /// Checks the configuration; no file yet.
    fn new(config: FilesConfig) -> Result<Self, FilesError> {
        let limits = &config.limits;
        if limits.seconds == Some(Duration::ZERO) {
            return Err(FilesError::Limits {
                reason: "seconds must not be 0",
            });
        }
        if limits.bytes == Some(0) {
            return Err(FilesError::Limits {
                reason: "bytes must not be 0",
            });
        }
        if limits.packets == Some(0) {
            return Err(FilesError::Limits {
                reason: "packets must not be 0",
            });
        }
        if limits.max_files == Some(0) {
            return Err(FilesError::Limits {
                reason: "max_files must not be 0",
            });
        }
        let header = savefile::header(
            config.format,
            LINKTYPE_ETHERNET,
            config.snaplen,
            &config.info,
        )
        .map_err(|source| FilesError::Io {
            operation: "describe",
            path: config.directory.path().to_owned(),
            source,
        })?;
        Ok(Savefiles {
            config,
            paths: Vec::new(),
            ids: Vec::new(),
            current: None,
            next_index: 0,
            packets: 0,
            bytes: 0,
            header,
            statistics: None,
        })
    }

    /// What a journal keeps to resume the recording: its files on disk,
    /// oldest first, and the next file's number.
    pub fn journal(&self) -> (Vec<JournalFile>, u64) {
        let files = self
            .names()
            .into_iter()
            .zip(&self.ids)
            .map(|(name, id)| JournalFile {
                name,
                dev: id.dev,
                ino: id.ino,
            })
            .collect();
        (files, self.next_index)
    }

    /// Writes one packet: `timestamp_ns` since the Unix epoch, the length on
    /// the wire, and the captured bytes (cut to the snaplen). Rotates first
    /// when a trigger says so, and deletes old files to keep within
    /// `max_files` and the disk allowance. The packet may wait in memory
    /// until [`Savefiles::flush`]; it counts as written (in the file's size,
    /// the disk allowance, [`Savefiles::packets`]) at once.
    ///
    /// Any error ends the recording: the current file ends at its last whole
    /// packet, and further calls return [`FilesError::Finished`].
    pub fn write(
        &mut self,
        timestamp_ns: u64,
        wire_len: u32,
        data: &[u8],
    ) -> Result<(), FilesError> {
        let frame = Frame {
            timestamp_ns,
            wire_len,
            direction: PacketDirection::Unknown,
            data,
        };
        let result = self.write_inner(Instant::now(), &frame);
        if result.is_err() {
            self.end();
        }
        result
    }

    /// Writes a batch of packets as [`Savefiles::write`] does (with their
    /// directions, which pcapng keeps), all as of one moment for rotation
    /// by time, then flushes ([`Savefiles::flush`]).
    pub fn write_batch<'a>(
        &mut self,
        packets: impl IntoIterator<Item = Frame<'a>>,
    ) -> Result<(), FilesError> {
        let now = Instant::now();
        for frame in packets {
            let result = self.write_inner(now, &frame);
            if result.is_err() {
                self.end();
                return result;
            }
        }
        self.flush()
    }

    /// Ends the recording after an error: what waits in memory and was
    /// counted goes to the file first (or is no longer counted).
    fn end(&mut self) {
        let _ = self.write_pending();
        self.current = None;
    }

    /// Writes the packets waiting in memory to the file, with one write:
    /// call it after a batch. An error ends the recording, and the packets
    /// that were waiting are no longer counted.
    pub fn flush(&mut self) -> Result<(), FilesError> {
        let result = self.write_pending();
        if result.is_err() {
            self.end();
        }
        result
    }

    /// The capture's counters now: each pcapng file closed from now on
    /// ends with them.
    pub fn set_statistics(&mut self, stats: CaptureStats) {
        self.statistics = Some(stats);
    }

    /// Rotates when the current file is older than `limits.seconds`; the
    /// daemon calls this about every 100 ms, so files rotate without
    /// traffic. An error ends the recording.
    pub fn tick(&mut self, now: Instant) -> Result<(), FilesError> {
        let Some(current) = &self.current else {
            return Err(FilesError::Finished);
        };
        if self.too_old(current, now) {
            let result = self.rotate(now, 0);
            if result.is_err() {
                self.end();
            }
            return result;
        }
        Ok(())
    }

    /// The file being written (the last one, once the recording has ended).
    pub fn current_file(&self) -> &Path {
        self.paths.last().expect("a recording always has a file")
    }

    /// The recording's files still on disk, oldest first.
    pub fn files(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The names of [`Savefiles::files`].
    pub fn names(&self) -> Vec<String> {
        self.paths
            .iter()
            .filter_map(|path| path.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect()
    }

    /// Changes the disk allowance (a policy reload) and deletes the oldest
    /// files at once as the new one requires; fails, ending the recording,
    /// when the current file alone exceeds it.
    pub fn set_disk_allowance(&mut self, allowance: Option<u64>) -> Result<(), FilesError> {
        self.config.account.set_limit(allowance.unwrap_or(0));
        let result = self.make_room(0);
        if result.is_err() {
            self.end();
        }
        result
    }

    /// The directory the files are in.
    pub fn directory(&self) -> &Path {
        self.config.directory.path()
    }

    /// The principal's record directory that one is in.
    pub fn principal_directory(&self) -> &Path {
        self.config.directory.base()
    }

    /// Packets written, over all files (deleted ones included).
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Bytes written, file headers included, over all files (deleted ones
    /// included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes the recording's files take on disk now (what the disk
    /// allowance limits).
    pub fn disk_usage(&self) -> u64 {
        self.ids.iter().map(|id| id.size).sum()
    }

    /// Whether the recording has ended after an error.
    pub fn is_finished(&self) -> bool {
        self.current.is_none()
    }

    /// Closes the current file and returns the files still on disk, oldest
    /// first.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, FilesError> {
        self.close_current()?;
        Ok(self.paths)
    }

    /// Writes what waits and closes the current file, if any.
    fn close_current(&mut self) -> Result<(), FilesError> {
        // A pcapng file ends with the capture's counters. The block (tens
        // of bytes) is not held to the disk allowance: a file never stays
        // without its end for want of room.
        if let (Some(current), Some(stats)) = (self.current.as_mut(), &self.statistics)
            && let Ok(block) = savefile::statistics(self.config.format, stats)
            && !block.is_empty()
        {
            current.output.append_block(&block);
            let len = block.len() as u64;
            self.bytes += len;
            self.config.account.hold(len);
            self.ids.last_mut().expect("a current file").size = current.size();
        }
        let written = self.write_pending();
        if let Some(current) = &self.current {
            current.output.sync();
        }
        // Nothing is pending now: giving the file back writes nothing.
        drop(self.current.take());
        written
    }

    /// Writes the current file's packets waiting in memory; when that
    /// fails, the file ends where it did before, and they are no longer
    /// counted anywhere.
    fn write_pending(&mut self) -> Result<(), FilesError> {
        let Some(current) = self.current.as_mut() else {
            return Ok(());
        };
        let before = current.size();
        let pending = current.pending();
        let Err(PartialWrite { error, whole }) = current.output.write_pending() else {
            current.written_packets = current.packets;
            self.config.account.release(pending, 0);
            return Ok(());
        };
        // Every piece written whole was a packet: the header is written as
        // soon as the file is made, and the closing block, when there is
        // one, is the last piece (whole only if everything was).
        current.written_packets += whole as u64;
        let lost = current.packets - current.written_packets;
        current.packets = current.written_packets;
        let size = current.size();
        self.packets -= lost;
        let lost_bytes = before - size;
        self.bytes -= lost_bytes;
        self.config
            .account
            .release(pending.saturating_sub(lost_bytes), lost_bytes);
        self.ids.last_mut().expect("a current file").size = size;
        Err(FilesError::Io {
            operation: "write a packet to",
            path: self.current_file().to_path_buf(),
            source: error,
        })
    }

    fn write_inner(&mut self, now: Instant, frame: &Frame<'_>) -> Result<(), FilesError> {
        let Some(current) = &self.current else {
            return Err(FilesError::Finished);
        };
        let entry = savefile::record_len(
            self.config.format,
            self.config.snaplen,
            frame.data.len(),
            frame.direction,
        );
        let limits = &self.config.limits;
        let rotate = self.too_old(current, now)
            || (current.packets > 0
                && limits
                    .bytes
                    .is_some_and(|limit| current.size() + entry > limit))
            || limits.packets.is_some_and(|limit| current.packets >= limit);
        if rotate {
            self.rotate(now, entry)?;
        } else {
            self.make_room(entry)?;
        }

        let current = self.current.as_mut().expect("checked above");
        let before = current.size();
        if let Err(source) = current.output.append_packet(frame) {
            self.config.account.release(0, entry);
            return Err(FilesError::Io {
                operation: "write a packet to",
                path: self.current_file().to_path_buf(),
                source,
            });
        }
        current.packets += 1;
        let size = current.size();
        self.packets += 1;
        self.bytes += size - before;
        // `entry` was reserved by `make_room`.
        let written = size - before;
        // Held in memory until written (a measure of the directory must
        // not forget it); `record_len` says what a packet takes, so the
        // adjustment is rare.
        if written != entry {
            self.config.account.adjust(entry, written);
        }
        self.ids.last_mut().expect("a current file").size = size;
        if current.pending() >= FLUSH_AT as u64 {
            self.write_pending()?;
        }
        Ok(())
    }

    fn too_old(&self, current: &Current, now: Instant) -> bool {
        self.config
            .limits
            .seconds
            .is_some_and(|limit| now.saturating_duration_since(current.opened) >= limit)
    }

    /// The savefile header's size.
    fn header_len(&self) -> u64 {
        self.header.len() as u64
    }

    fn next_name(&self) -> String {
        self.config.pattern.file_name(self.next_index)
    }

    fn next_path(&self) -> PathBuf {
        self.directory().join(self.next_name())
    }

    /// Closes the current file, opens the next, then deletes the oldest
    /// files beyond `max_files` and as the disk allowance requires to make
    /// room for a packet of `entry` bytes.
    fn rotate(&mut self, now: Instant, entry: u64) -> Result<(), FilesError> {
        self.close_current()?;
        self.open_next(now)?;
        if let Some(max) = self.config.limits.max_files {
            while self.paths.len() > max as usize {
                self.delete_oldest()?;
            }
        }
        self.make_room(entry)
    }

    /// Deletes the oldest files (never the current one) until a packet of
    /// `entry` bytes fits in the principal's disk allowance, and reserves
    /// them there (the write then counts only what it wrote beyond, or
    /// gives back what it did not write); fails when it cannot.
    fn make_room(&mut self, entry: u64) -> Result<(), FilesError> {
        while !self.config.account.reserve(entry) {
            if self.paths.len() <= 1 {
                let path = self.current_file().to_path_buf();
                self.fit(entry, &path)?;
                if self.config.account.reserve(entry) {
                    return Ok(());
                }
                // Another recording of the principal took the room.
                return Err(FilesError::DiskAllowance {
                    allowance: self.config.account.limit(),
                    needed: self.config.account.used() + entry,
                    path,
                });
            }
            self.delete_oldest()?;
        }
        Ok(())
    }

    /// Whether `entry` bytes fit the allowance, measuring the directory
    /// again before saying no (users delete their own files).
    fn fit(&self, entry: u64, path: &Path) -> Result<(), FilesError> {
        let account = &self.config.account;
        if account.fits(entry) {
            return Ok(());
        }
        let used = account.remeasure().map_err(|source| FilesError::Io {
            operation: "measure",
            path: self.directory().to_owned(),
            source,
        })?;
        if account.fits(entry) {
            return Ok(());
        }
        Err(FilesError::DiskAllowance {
            allowance: account.limit(),
            needed: used + entry,
            path: path.to_owned(),
        })
    }

    /// Deletes the oldest file (see [`delete_if_ours`]) and forgets it.
    fn delete_oldest(&mut self) -> Result<(), FilesError> {
        let path = self.paths.remove(0);
        let id = self.ids.remove(0);
        let directory = &self.config.directory;
        self.config
            .account
            .delete(id.size, || delete_if_ours(directory, &path, id))?;
        Ok(())
    }

    /// Creates the next file and writes its header; it becomes the current
    /// one.
    fn open_next(&mut self, now: Instant) -> Result<(), FilesError> {
        let path = self.next_path();
        let file = rustix::fs::openat(
            self.config.directory.fd(),
            self.next_name().as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        )
        .map(File::from)
        .map_err(|errno| match errno {
            rustix::io::Errno::EXIST | rustix::io::Errno::LOOP => {
                FilesError::Exists { path: path.clone() }
            }
            errno => FilesError::Io {
                operation: "create",
                path: path.clone(),
                source: errno.into(),
            },
        })?;
        if let Some((uid, gid)) = self.config.owner
            && let Err(source) = std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
        {
            let _ = rustix::fs::unlinkat(
                self.config.directory.fd(),
                self.next_name().as_str(),
                AtFlags::empty(),
            );
            return Err(FilesError::Io {
                operation: "hand over",
                path: path.clone(),
                source,
            });
        }
        let meta = file.metadata().map_err(|source| FilesError::Io {
            operation: "inspect",
            path: path.clone(),
            source,
        })?;
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: 0,
        };
        // The header goes to the file at once: a new file is a savefile
        // from the start.
        let mut output = Output::new(file, self.config.format, self.config.snaplen);
        output.append_block(&self.header);
        let output = match output.write_pending().map(|()| output) {
            Ok(output) => output,
            Err(PartialWrite { error: source, .. }) => {
                // A file without a whole header is no savefile: remove it.
                if let Err(error) = delete_if_ours(&self.config.directory, &path, id) {
                    tracing::warn!(%error, "cannot remove a file without a header");
                }
                return Err(FilesError::Io {
                    operation: "write the header of",
                    path,
                    source,
                });
            }
        };
        self.next_index += 1;
        let size = output.size();
        self.bytes += size;
        self.config.account.add(size);
        self.paths.push(path);
        self.ids.push(FileId { size, ..id });
        self.current = Some(Current {
            output,
            opened: now,
            packets: 0,
            written_packets: 0,
        });
        Ok(())
    }
}

/// Deletes `path`'s file from `directory` if it is still the regular file
/// created (same device and inode), and says whether it did; otherwise
/// leaves whatever is there alone.
fn delete_if_ours(directory: &UserDirectory, path: &Path, id: FileId) -> Result<bool, FilesError> {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .expect("recorded files are named by a pattern");
    let failed = |operation, errno: rustix::io::Errno| FilesError::Io {
        operation,
        path: path.to_owned(),
        source: errno.into(),
    };
    match rustix::fs::statat(directory.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat)
            if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
                && stat.st_dev == id.dev
                && stat.st_ino == id.ino => {}
        Ok(_) => {
            tracing::warn!(
                path = %path.display(),
                "not deleting a recorded file: it was replaced"
            );
            return Ok(false);
        }
        Err(rustix::io::Errno::NOENT) => return Ok(false),
        Err(errno) => return Err(failed("inspect", errno)),
    }
    match rustix::fs::unlinkat(directory.fd(), name, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(errno) => Err(failed("delete", errno)),
    }
}

#[cfg(test)]
mod tests;
