//! File mode: recording a client's capture to savefiles in the directory
//! the policy gives its principal, rotating by time, size or packet count,
//! and keeping within a file count and a disk allowance.
//!
//! The daemon runs as root and the directory belongs to an unprivileged
//! principal, who may plant symlinks or swap files at any time. So:
//!
//! - file names come only from a validated [`Pattern`] (no `/`, no leading
//!   `.` or `-`, never used as a format string);
//! - every file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`: an existing
//!   name, symlink or not, is never opened, followed or overwritten, and the
//!   recording fails with [`RecordError::Exists`] instead of skipping it;
//! - only files of this recording are ever deleted, and only while the name
//!   still refers to the regular file created (same device and inode);
//!   anything else is left alone and forgotten.
//!
//! Files end at a whole record: a record is written with one `write_all`
//! straight to the file (no buffering), and when that fails (`ENOSPC`
//! included) the file is truncated back to the size it had before, and the
//! recording ends.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use libwire::savefile::{Format, LINKTYPE_ETHERNET, Writer};

/// The longest pattern accepted, in bytes (`NAME_MAX`).
pub const MAX_PATTERN_LEN: usize = 255;

/// The permissions of every file created.
const FILE_MODE: u32 = 0o640;

/// Errors of a recording.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The file name pattern was refused.
    #[error("invalid file name pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A rotation setting makes no sense (a zero limit).
    #[error("invalid rotation: {reason}")]
    Rotation {
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
        /// What was being done, for example "write a record to".
        operation: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing would exceed the disk allowance even with every older file of
    /// the recording deleted.
    #[error("disk allowance of {allowance} bytes exceeded: {path} alone would take {needed} bytes")]
    DiskAllowance {
        /// The allowance, in bytes.
        allowance: u64,
        /// What the current file would take with the new record.
        needed: u64,
        /// The current file.
        path: PathBuf,
    },
    /// The recording has ended (after an error, or before any file exists).
    #[error("the recording has ended")]
    Finished,
}

/// A validated file name pattern: exactly one `%d`, which is replaced by the
/// file's sequence number; otherwise only `A-Z a-z 0-9 . _ -`; not starting
/// with `.` or `-`; at most 255 bytes.
///
/// The pattern is never used as a format string: names are the text before
/// the `%d`, the number in decimal, and the text after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    prefix: String,
    suffix: String,
}

impl Pattern {
    /// Validates `text`.
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        let refuse = |reason| {
            Err(RecordError::Pattern {
                pattern: text.to_owned(),
                reason,
            })
        };
        if text.len() > MAX_PATTERN_LEN {
            return refuse("longer than 255 bytes");
        }
        if text.matches("%d").count() != 1 {
            return refuse("must contain exactly one %d");
        }
        let (prefix, suffix) = text.split_once("%d").expect("one %d");
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !prefix.chars().chain(suffix.chars()).all(allowed) {
            return refuse("may only contain A-Z a-z 0-9 . _ - and one %d");
        }
        if text.starts_with(['.', '-']) {
            return refuse("must not start with . or -");
        }
        Ok(Pattern {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        })
    }

    /// The name of file number `index`: the `%d` replaced by `index` in
    /// decimal.
    pub fn file_name(&self, index: u64) -> String {
        format!("{}{index}{}", self.prefix, self.suffix)
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%d{}", self.prefix, self.suffix)
    }
}

/// When to start a new file, and how many to keep. `None` means no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Start a new file when the current one is this old (checked on every
    /// packet and by [`Recorder::tick`], so files are made even without
    /// traffic).
    pub seconds: Option<Duration>,
    /// Start a new file when the next record would make the current one
    /// larger than this (a file always gets at least one record).
    pub bytes: Option<u64>,
    /// Start a new file when the current one has this many packets.
    pub packets: Option<u64>,
    /// Keep at most this many files of the recording: a rotation that would
    /// exceed it deletes the oldest (like tcpdump `-W`, but deleting rather
    /// than overwriting).
    pub max_files: Option<u32>,
}

/// What a [`Recorder`] records, where and within what limits.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// The principal's directory (created by the box owner).
    pub directory: PathBuf,
    /// The file names.
    pub pattern: Pattern,
    /// When to rotate.
    pub rotation: Rotation,
    /// pcap or pcapng.
    pub format: Format,
    /// The most bytes kept of each packet (0: all).
    pub snaplen: u32,
    /// The most bytes this recording's files may take together: the oldest
    /// files are deleted to make room (never the current one); when the
    /// current file alone would exceed it, the recording ends with
    /// [`RecordError::DiskAllowance`].
    pub disk_allowance: Option<u64>,
    /// Who owns the files (uid, gid): the client that asked for the
    /// recording, so that it can read them. Set on the open descriptor
    /// (fchown), never through the path.
    pub owner: Option<(u32, u32)>,
}

/// The file under the savefile writer: writes go straight to the file (no
/// buffer) and are counted, so the recorder knows the file's size and can
/// cut a failed record off.
#[derive(Debug)]
struct Shared {
    file: File,
    written: AtomicU64,
}

#[derive(Debug)]
struct CountingFile(Arc<Shared>);

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&self.0.file).write(buf)?;
        self.0.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
    writer: Writer<CountingFile>,
    shared: Arc<Shared>,
    opened: Instant,
    packets: u64,
}

impl Current {
    fn size(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }
}

/// Records packets to a sequence of savefiles.
#[derive(Debug)]
pub struct Recorder {
    config: RecorderConfig,
    /// The files still on disk, oldest first; the last is the current one.
    paths: Vec<PathBuf>,
    /// Parallel to `paths`.
    ids: Vec<FileId>,
    /// `None` once the recording has ended.
    current: Option<Current>,
    next_index: u64,
    packets: u64,
    bytes: u64,
}

impl Recorder {
    /// Checks the configuration and creates the first file (number 0).
    pub fn create(config: RecorderConfig) -> Result<Self, RecordError> {
        let rotation = &config.rotation;
        if rotation.seconds == Some(Duration::ZERO) {
            return Err(RecordError::Rotation {
                reason: "seconds must not be 0",
            });
        }
        if rotation.bytes == Some(0) {
            return Err(RecordError::Rotation {
                reason: "bytes must not be 0",
            });
        }
        if rotation.packets == Some(0) {
            return Err(RecordError::Rotation {
                reason: "packets must not be 0",
            });
        }
        if rotation.max_files == Some(0) {
            return Err(RecordError::Rotation {
                reason: "max_files must not be 0",
            });
        }
        let mut recorder = Recorder {
            config,
            paths: Vec::new(),
            ids: Vec::new(),
            current: None,
            next_index: 0,
            packets: 0,
            bytes: 0,
        };
        if let Some(allowance) = recorder.config.disk_allowance {
            let needed = recorder.header_len();
            if needed > allowance {
                return Err(RecordError::DiskAllowance {
                    allowance,
                    needed,
                    path: recorder.next_path(),
                });
            }
        }
        recorder.open_next(Instant::now())?;
        Ok(recorder)
    }

    /// Writes one packet: `timestamp_ns` since the Unix epoch, the length on
    /// the wire, and the captured bytes (cut to the snaplen). Rotates first
    /// when a trigger says so, and deletes old files to keep within
    /// `max_files` and the disk allowance.
    ///
    /// Any error ends the recording: the current file ends at its last whole
    /// record, and further calls return [`RecordError::Finished`].
    pub fn write(
        &mut self,
        timestamp_ns: u64,
        wire_len: u32,
        data: &[u8],
    ) -> Result<(), RecordError> {
        let result = self.write_inner(timestamp_ns, wire_len, data);
        if result.is_err() {
            self.current = None;
        }
        result
    }

    /// Rotates when the current file is older than `rotation.seconds`; the
    /// daemon calls this about every 100 ms, so files rotate without
    /// traffic. An error ends the recording.
    pub fn tick(&mut self, now: Instant) -> Result<(), RecordError> {
        let Some(current) = &self.current else {
            return Err(RecordError::Finished);
        };
        if self.too_old(current, now) {
            let result = self.rotate(now, 0);
            if result.is_err() {
                self.current = None;
            }
            return result;
        }
        Ok(())
    }

    /// The file being written (the last one, once the recording has ended).
    pub fn current_file(&self) -> &Path {
        self.paths.last().expect("a recorder always has a file")
    }

    /// The recording's files still on disk, oldest first.
    pub fn files(&self) -> &[PathBuf] {
        &self.paths
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
    pub fn finish(mut self) -> Result<Vec<PathBuf>, RecordError> {
        self.close_current()?;
        Ok(self.paths)
    }

    /// Flushes and closes the current file, if any.
    fn close_current(&mut self) -> Result<(), RecordError> {
        if let Some(current) = self.current.take() {
            let path = self.current_file().to_path_buf();
            current
                .writer
                .into_inner()
                .map_err(|source| RecordError::Io {
                    operation: "flush",
                    path,
                    source,
                })?;
        }
        Ok(())
    }

    fn write_inner(
        &mut self,
        timestamp_ns: u64,
        wire_len: u32,
        data: &[u8],
    ) -> Result<(), RecordError> {
        let Some(current) = &self.current else {
            return Err(RecordError::Finished);
        };
        let record = self.record_len(data.len());
        let rotation = &self.config.rotation;
        let now = Instant::now();
        let rotate = self.too_old(current, now)
            || (current.packets > 0
                && rotation
                    .bytes
                    .is_some_and(|limit| current.size() + record > limit))
            || rotation
                .packets
                .is_some_and(|limit| current.packets >= limit);
        if rotate {
            self.rotate(now, record)?;
        } else {
            self.make_room(record)?;
        }

        let path = self.current_file().to_path_buf();
        let current = self.current.as_mut().expect("checked above");
        let before = current.size();
        if let Err(source) = current.writer.write_packet(timestamp_ns, wire_len, data) {
            // Cut the partial record off, so the file ends at a whole one.
            if current.size() != before
                && let Err(truncate) = current.shared.file.set_len(before)
            {
                tracing::error!(
                    path = %path.display(),
                    error = %truncate,
                    "cannot truncate a partly written record"
                );
            }
            current.shared.written.store(before, Ordering::Relaxed);
            return Err(RecordError::Io {
                operation: "write a record to",
                path,
                source,
            });
        }
        current.packets += 1;
        let size = current.size();
        self.packets += 1;
        self.bytes += size - before;
        self.ids.last_mut().expect("a current file").size = size;
        Ok(())
    }

    fn too_old(&self, current: &Current, now: Instant) -> bool {
        self.config
            .rotation
            .seconds
            .is_some_and(|limit| now.saturating_duration_since(current.opened) >= limit)
    }

    /// The savefile header's size.
    fn header_len(&self) -> u64 {
        match self.config.format {
            Format::Pcap => 24,
            Format::PcapNg => 28 + 32,
        }
    }

    /// The size of the record for a packet of `len` captured bytes.
    fn record_len(&self, len: usize) -> u64 {
        let mut caplen = len as u64;
        if self.config.snaplen != 0 {
            caplen = caplen.min(u64::from(self.config.snaplen));
        }
        match self.config.format {
            Format::Pcap => 16 + caplen,
            Format::PcapNg => 32 + caplen.div_ceil(4) * 4,
        }
    }

    fn next_path(&self) -> PathBuf {
        self.config
            .directory
            .join(self.config.pattern.file_name(self.next_index))
    }

    /// Closes the current file, opens the next, then deletes the oldest
    /// files beyond `max_files` and as the disk allowance requires to make
    /// room for a record of `record` bytes.
    fn rotate(&mut self, now: Instant, record: u64) -> Result<(), RecordError> {
        self.close_current()?;
        self.open_next(now)?;
        if let Some(max) = self.config.rotation.max_files {
            while self.paths.len() > max as usize {
                self.delete_oldest()?;
            }
        }
        self.make_room(record)
    }

    /// Deletes the oldest files (never the current one) until a record of
    /// `record` bytes fits in the disk allowance; fails when it cannot.
    fn make_room(&mut self, record: u64) -> Result<(), RecordError> {
        let Some(allowance) = self.config.disk_allowance else {
            return Ok(());
        };
        while self.disk_usage() + record > allowance {
            if self.paths.len() <= 1 {
                return Err(RecordError::DiskAllowance {
                    allowance,
                    needed: self.disk_usage() + record,
                    path: self.current_file().to_path_buf(),
                });
            }
            self.delete_oldest()?;
        }
        Ok(())
    }

    /// Deletes the oldest file (see [`delete_if_ours`]) and forgets it.
    fn delete_oldest(&mut self) -> Result<(), RecordError> {
        let path = self.paths.remove(0);
        let id = self.ids.remove(0);
        delete_if_ours(path, id)
    }

    /// Creates the next file and writes its header; it becomes the current
    /// one.
    fn open_next(&mut self, now: Instant) -> Result<(), RecordError> {
        let path = self.next_path();
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|source| {
                if source.kind() == io::ErrorKind::AlreadyExists
                    || source.raw_os_error() == Some(libc::ELOOP)
                {
                    RecordError::Exists { path: path.clone() }
                } else {
                    RecordError::Io {
                        operation: "create",
                        path: path.clone(),
                        source,
                    }
                }
            })?;
        if let Some((uid, gid)) = self.config.owner
            && let Err(source) = std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
        {
            let _ = std::fs::remove_file(&path);
            return Err(RecordError::Io {
                operation: "hand over",
                path: path.clone(),
                source,
            });
        }
        let meta = file.metadata().map_err(|source| RecordError::Io {
            operation: "inspect",
            path: path.clone(),
            source,
        })?;
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: 0,
        };
        let shared = Arc::new(Shared {
            file,
            written: AtomicU64::new(0),
        });
        let writer = match Writer::new(
            CountingFile(shared.clone()),
            self.config.format,
            LINKTYPE_ETHERNET,
            self.config.snaplen,
        ) {
            Ok(writer) => writer,
            Err(source) => {
                // A file without a whole header is no savefile: remove it.
                if let Err(error) = delete_if_ours(path.clone(), id) {
                    tracing::warn!(%error, "cannot remove a file without a header");
                }
                return Err(RecordError::Io {
                    operation: "write the header of",
                    path,
                    source,
                });
            }
        };
        self.next_index += 1;
        let size = shared.written.load(Ordering::Relaxed);
        self.bytes += size;
        self.paths.push(path);
        self.ids.push(FileId { size, ..id });
        self.current = Some(Current {
            writer,
            shared,
            opened: now,
            packets: 0,
        });
        Ok(())
    }
}

/// Deletes `path` if it is still the regular file created (same device and
/// inode); otherwise leaves whatever is there alone.
fn delete_if_ours(path: PathBuf, id: FileId) -> Result<(), RecordError> {
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_file() && meta.dev() == id.dev && meta.ino() == id.ino => {}
        Ok(_) => {
            tracing::warn!(
                path = %path.display(),
                "not deleting a recorded file: it was replaced"
            );
            return Ok(());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(RecordError::Io {
                operation: "inspect",
                path,
                source,
            });
        }
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RecordError::Io {
            operation: "delete",
            path,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        os::unix::fs::PermissionsExt, process::Command, sync::atomic::AtomicUsize, thread::sleep,
    };

    const T0: u64 = 1_700_000_000_000_000_000;

    /// A fresh directory under /tmp, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let path = PathBuf::from(format!(
                "/tmp/pktd-record-{tag}-{}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A small tmpfs mounted on a fresh directory, unmounted on drop (also
    /// when a test panics).
    struct Tmpfs(TempDir);

    impl Tmpfs {
        fn new(size: &str) -> Self {
            let dir = TempDir::new("tmpfs");
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&dir.0)
                .status()
                .expect("run mount");
            assert!(status.success(), "mount a tmpfs (the test needs root)");
            Tmpfs(dir)
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0.0).status();
        }
    }

    /// An Ethernet/IPv4/UDP frame of `len` bytes (at least 42).
    fn frame(seq: u16, len: usize) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000 + seq, 2000);
        let payload = vec![0x5a; len - 42];
        let mut out = Vec::with_capacity(len);
        builder.write(&mut out, &payload).unwrap();
        assert_eq!(out.len(), len);
        out
    }

    fn write_n(recorder: &mut Recorder, n: u64, len: usize) {
        for i in 0..n {
            let data = frame(i as u16, len);
            recorder
                .write(T0 + i * 1_000_000, data.len() as u32, &data)
                .unwrap();
        }
    }

    /// Reads `path` with tcpdump and returns the number of packets; fails
    /// unless tcpdump reads the file cleanly.
    fn tcpdump_count(path: &Path) -> usize {
        let out = Command::new("tcpdump")
            .arg("-r")
            .arg(path)
            .arg("-nn")
            .output()
            .expect("run tcpdump");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "tcpdump -r {}: {stderr}",
            path.display()
        );
        assert!(
            !stderr.contains("truncated"),
            "tcpdump -r {}: {stderr}",
            path.display()
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines() {
            assert!(line.contains(" UDP, length "), "unexpected line {line:?}");
        }
        stdout.lines().count()
    }

    fn counts(files: &[PathBuf]) -> Vec<usize> {
        files.iter().map(|f| tcpdump_count(f)).collect()
    }

    fn config(dir: &Path, pattern: &str, rotation: Rotation) -> RecorderConfig {
        RecorderConfig {
            directory: dir.to_path_buf(),
            pattern: Pattern::parse(pattern).unwrap(),
            rotation,
            format: Format::Pcap,
            snaplen: 0,
            disk_allowance: None,
            owner: None,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_recorder_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Recorder>();
        send_sync::<RecordError>();
    }

    #[test]
    fn good_patterns_parse() {
        for (text, name) in [
            ("icmp-%d.pcap", "icmp-7.pcap"),
            ("a%d", "a7"),
            ("%d", "7"),
            ("%dd", "7d"),
            ("x_%d.Y-z", "x_7.Y-z"),
        ] {
            let pattern = Pattern::parse(text).unwrap();
            assert_eq!(pattern.file_name(7), name);
            assert_eq!(pattern.to_string(), text);
        }
        let pattern = Pattern::parse("t-%d.pcap").unwrap();
        assert_eq!(pattern.file_name(0), "t-0.pcap");
        assert_eq!(pattern.file_name(u64::MAX), "t-18446744073709551615.pcap");
        let longest = format!("{}%d", "a".repeat(253));
        assert!(Pattern::parse(&longest).is_ok());
    }

    #[test]
    fn hostile_patterns_are_refused_with_a_reason() {
        let long = format!("{}%d", "a".repeat(254));
        assert_eq!(long.len(), 256);
        for (text, reason) in [
            ("../a%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("/etc/x%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("a/b%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("%n", "must contain exactly one %d"),
            ("%d%d", "must contain exactly one %d"),
            ("%s", "must contain exactly one %d"),
            ("%x%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("%%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("%d%n", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("%d%", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("%5d", "must contain exactly one %d"),
            (".hidden%d", "must not start with . or -"),
            ("-rf%d", "must not start with . or -"),
            (".%d", "must not start with . or -"),
            (&long, "longer than 255 bytes"),
            ("a%d\0", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("a\0%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("a%d\n", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("a b%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            ("é%d", "may only contain A-Z a-z 0-9 . _ - and one %d"),
            (
                "a%d\u{2215}x",
                "may only contain A-Z a-z 0-9 . _ - and one %d",
            ),
            ("", "must contain exactly one %d"),
            ("plain.pcap", "must contain exactly one %d"),
        ] {
            match Pattern::parse(text) {
                Err(RecordError::Pattern {
                    pattern,
                    reason: got,
                }) => {
                    assert_eq!(pattern, text);
                    assert_eq!(got, reason, "pattern {text:?}");
                }
                other => panic!("pattern {text:?}: {other:?}"),
            }
        }
        let message = Pattern::parse("%s").unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid file name pattern \"%s\": must contain exactly one %d"
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        let dir = TempDir::new("zero");
        for rotation in [
            Rotation {
                seconds: Some(Duration::ZERO),
                ..Rotation::default()
            },
            Rotation {
                bytes: Some(0),
                ..Rotation::default()
            },
            Rotation {
                packets: Some(0),
                ..Rotation::default()
            },
            Rotation {
                max_files: Some(0),
                ..Rotation::default()
            },
        ] {
            let err = Recorder::create(config(&dir.0, "z%d", rotation)).unwrap_err();
            assert!(matches!(err, RecordError::Rotation { .. }), "{err:?}");
        }
        assert!(names(&dir.0).is_empty());
    }

    #[test]
    fn one_file_without_rotation() {
        let dir = TempDir::new("one");
        let mut recorder =
            Recorder::create(config(&dir.0, "one-%d.pcap", Rotation::default())).unwrap();
        assert_eq!(recorder.current_file(), dir.0.join("one-0.pcap"));
        write_n(&mut recorder, 25, 100);
        assert_eq!(recorder.packets(), 25);
        assert_eq!(recorder.bytes(), 24 + 25 * 116);
        assert_eq!(recorder.disk_usage(), 24 + 25 * 116);
        let files = recorder.finish().unwrap();
        assert_eq!(files, vec![dir.0.join("one-0.pcap")]);
        let meta = std::fs::metadata(&files[0]).unwrap();
        assert_eq!(meta.len(), 24 + 25 * 116);
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        assert_eq!(counts(&files), vec![25]);
    }

    #[test]
    fn rotates_by_bytes() {
        let dir = TempDir::new("bytes");
        // Header 24 + three records of 16 + 100.
        let limit = 24 + 3 * 116;
        let rotation = Rotation {
            bytes: Some(limit),
            ..Rotation::default()
        };
        let mut recorder = Recorder::create(config(&dir.0, "b-%d.pcap", rotation)).unwrap();
        write_n(&mut recorder, 10, 100);
        // A packet larger than the limit still gets written, alone in a file.
        let big = frame(99, 1000);
        recorder.write(T0, 1000, &big).unwrap();
        write_n(&mut recorder, 1, 100);
        let files = recorder.finish().unwrap();
        assert_eq!(
            names(&dir.0),
            [
                "b-0.pcap", "b-1.pcap", "b-2.pcap", "b-3.pcap", "b-4.pcap", "b-5.pcap"
            ]
        );
        assert_eq!(counts(&files), vec![3, 3, 3, 1, 1, 1]);
        for file in &files[..3] {
            assert_eq!(std::fs::metadata(file).unwrap().len(), limit);
        }
    }

    #[test]
    fn rotates_by_packets_pcapng_with_snaplen() {
        let dir = TempDir::new("packets");
        let mut config = config(
            &dir.0,
            "p-%d.pcapng",
            Rotation {
                packets: Some(4),
                ..Rotation::default()
            },
        );
        config.format = Format::PcapNg;
        config.snaplen = 61;
        let mut recorder = Recorder::create(config).unwrap();
        write_n(&mut recorder, 10, 100);
        assert_eq!(recorder.packets(), 10);
        // 3 headers of 60, 10 records of 32 + 64 (61 rounded up).
        assert_eq!(recorder.bytes(), 3 * 60 + 10 * 96);
        assert_eq!(recorder.disk_usage(), recorder.bytes());
        let files = recorder.finish().unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(counts(&files), vec![4, 4, 2]);
        let sizes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert_eq!(sizes, 3 * 60 + 10 * 96);
    }

    #[test]
    fn rotates_by_seconds_with_and_without_traffic() {
        let dir = TempDir::new("seconds");
        let rotation = Rotation {
            seconds: Some(Duration::from_millis(200)),
            ..Rotation::default()
        };
        let mut recorder = Recorder::create(config(&dir.0, "s-%d.pcap", rotation)).unwrap();
        write_n(&mut recorder, 2, 80);
        recorder.tick(Instant::now()).unwrap();
        assert_eq!(recorder.files().len(), 1);
        sleep(Duration::from_millis(250));
        // No traffic: tick rotates.
        recorder.tick(Instant::now()).unwrap();
        assert_eq!(recorder.files().len(), 2);
        assert_eq!(recorder.current_file(), dir.0.join("s-1.pcap"));
        sleep(Duration::from_millis(250));
        recorder.tick(Instant::now()).unwrap();
        assert_eq!(recorder.files().len(), 3);
        write_n(&mut recorder, 1, 80);
        assert_eq!(recorder.files().len(), 3);
        sleep(Duration::from_millis(250));
        // Traffic: write rotates.
        write_n(&mut recorder, 3, 80);
        assert_eq!(recorder.files().len(), 4);
        let files = recorder.finish().unwrap();
        assert_eq!(counts(&files), vec![2, 0, 1, 3]);
    }

    #[test]
    fn max_files_deletes_the_oldest() {
        let dir = TempDir::new("max");
        // Someone else's file in the directory is never touched.
        std::fs::write(dir.0.join("other.pcap"), b"not ours").unwrap();
        let rotation = Rotation {
            packets: Some(2),
            max_files: Some(3),
            ..Rotation::default()
        };
        let mut recorder = Recorder::create(config(&dir.0, "m-%d.pcap", rotation)).unwrap();
        write_n(&mut recorder, 11, 100);
        assert_eq!(recorder.packets(), 11);
        let files = recorder.finish().unwrap();
        assert_eq!(
            files,
            ["m-3.pcap", "m-4.pcap", "m-5.pcap"].map(|n| dir.0.join(n))
        );
        assert_eq!(
            names(&dir.0),
            ["m-3.pcap", "m-4.pcap", "m-5.pcap", "other.pcap"]
        );
        assert_eq!(counts(&files), vec![2, 2, 1]);
        assert_eq!(
            std::fs::read(dir.0.join("other.pcap")).unwrap(),
            b"not ours"
        );
    }

    #[test]
    fn disk_allowance_deletes_the_oldest() {
        let dir = TempDir::new("allowance");
        let mut config = config(
            &dir.0,
            "d-%d.pcap",
            Rotation {
                packets: Some(5),
                ..Rotation::default()
            },
        );
        // A full file: 24 + 5 * 116 = 604 bytes.
        let allowance = 1300;
        config.disk_allowance = Some(allowance);
        let mut recorder = Recorder::create(config).unwrap();
        for i in 0..23 {
            write_n(&mut recorder, 1, 100);
            assert!(recorder.disk_usage() <= allowance, "after packet {i}");
            let on_disk: u64 = recorder
                .files()
                .iter()
                .map(|f| std::fs::metadata(f).unwrap().len())
                .sum();
            assert_eq!(on_disk, recorder.disk_usage());
        }
        assert_eq!(recorder.packets(), 23);
        let files = recorder.finish().unwrap();
        assert_eq!(files, ["d-3.pcap", "d-4.pcap"].map(|n| dir.0.join(n)));
        assert_eq!(names(&dir.0), ["d-3.pcap", "d-4.pcap"]);
        assert_eq!(counts(&files), vec![5, 3]);
    }

    #[test]
    fn disk_allowance_ends_when_the_current_file_alone_exceeds_it() {
        let dir = TempDir::new("alone");
        let mut config = config(&dir.0, "a-%d.pcap", Rotation::default());
        config.disk_allowance = Some(500);
        let mut recorder = Recorder::create(config).unwrap();
        // 24 + 4 * 116 = 488; a fifth record would make 604.
        write_n(&mut recorder, 4, 100);
        let data = frame(4, 100);
        match recorder.write(T0, 100, &data) {
            Err(RecordError::DiskAllowance {
                allowance: 500,
                needed: 604,
                path,
            }) => assert_eq!(path, dir.0.join("a-0.pcap")),
            other => panic!("{other:?}"),
        }
        assert!(recorder.is_finished());
        assert!(matches!(
            recorder.write(T0, 100, &data),
            Err(RecordError::Finished)
        ));
        assert!(matches!(
            recorder.tick(Instant::now()),
            Err(RecordError::Finished)
        ));
        let files = recorder.finish().unwrap();
        assert_eq!(counts(&files), vec![4]);

        // An allowance smaller than the header is refused before any file.
        let dir = TempDir::new("tiny");
        let mut config = self::config(&dir.0, "a-%d.pcap", Rotation::default());
        config.disk_allowance = Some(10);
        assert!(matches!(
            Recorder::create(config),
            Err(RecordError::DiskAllowance { .. })
        ));
        assert!(names(&dir.0).is_empty());
    }

    #[test]
    fn a_symlink_at_the_next_name_stops_the_recording() {
        let dir = TempDir::new("planted");
        let outside = TempDir::new("outside");
        let target = outside.0.join("precious");
        std::fs::write(&target, b"precious").unwrap();

        // At the first name: create fails.
        std::os::unix::fs::symlink(&target, dir.0.join("l-0.pcap")).unwrap();
        match Recorder::create(config(&dir.0, "l-%d.pcap", Rotation::default())) {
            Err(RecordError::Exists { path }) => assert_eq!(path, dir.0.join("l-0.pcap")),
            other => panic!("{other:?}"),
        }
        // A dangling one too: O_EXCL never follows it.
        let dangling = outside.0.join("created-through-symlink");
        std::os::unix::fs::symlink(&dangling, dir.0.join("k-0.pcap")).unwrap();
        assert!(matches!(
            Recorder::create(config(&dir.0, "k-%d.pcap", Rotation::default())),
            Err(RecordError::Exists { .. })
        ));
        assert!(!dangling.exists());

        // At a rotation's name: the rotation fails, nothing is skipped.
        let rotation = Rotation {
            packets: Some(1),
            ..Rotation::default()
        };
        let mut recorder = Recorder::create(config(&dir.0, "r-%d.pcap", rotation)).unwrap();
        let planted = dir.0.join("r-1.pcap");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        write_n(&mut recorder, 1, 100);
        let data = frame(1, 100);
        match recorder.write(T0, 100, &data) {
            Err(RecordError::Exists { path }) => assert_eq!(path, planted),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            recorder.write(T0, 100, &data),
            Err(RecordError::Finished)
        ));
        let files = recorder.finish().unwrap();
        assert_eq!(files, [dir.0.join("r-0.pcap")]);
        assert_eq!(counts(&files), vec![1]);
        assert!(
            std::fs::symlink_metadata(&planted)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_link(&planted).unwrap(), target);
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert!(!dir.0.join("r-2.pcap").exists());

        // A regular file at the next name is not overwritten either.
        std::fs::write(dir.0.join("f-1.pcap"), b"theirs").unwrap();
        let rotation = Rotation {
            packets: Some(1),
            ..Rotation::default()
        };
        let mut recorder = Recorder::create(config(&dir.0, "f-%d.pcap", rotation)).unwrap();
        write_n(&mut recorder, 1, 100);
        assert!(matches!(
            recorder.write(T0, 100, &data),
            Err(RecordError::Exists { .. })
        ));
        assert_eq!(std::fs::read(dir.0.join("f-1.pcap")).unwrap(), b"theirs");
    }

    #[test]
    fn a_replaced_file_is_not_deleted() {
        let dir = TempDir::new("replaced");
        let outside = TempDir::new("outside");
        let target = outside.0.join("precious");
        std::fs::write(&target, b"precious").unwrap();
        let rotation = Rotation {
            packets: Some(1),
            max_files: Some(1),
            ..Rotation::default()
        };
        let mut recorder = Recorder::create(config(&dir.0, "x-%d.pcap", rotation)).unwrap();
        write_n(&mut recorder, 1, 100);

        // x-0.pcap replaced by a symlink before the rotation deletes it.
        let first = dir.0.join("x-0.pcap");
        std::fs::remove_file(&first).unwrap();
        std::os::unix::fs::symlink(&target, &first).unwrap();
        write_n(&mut recorder, 1, 100);
        assert_eq!(recorder.files(), [dir.0.join("x-1.pcap")]);
        assert!(
            std::fs::symlink_metadata(&first)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");

        // x-1.pcap replaced by another regular file (another inode).
        let second = dir.0.join("x-1.pcap");
        std::fs::rename(&second, outside.0.join("moved")).unwrap();
        std::fs::write(&second, b"theirs").unwrap();
        write_n(&mut recorder, 1, 100);
        assert_eq!(std::fs::read(&second).unwrap(), b"theirs");

        // x-2.pcap deleted by someone else: forgotten, no error.
        std::fs::remove_file(dir.0.join("x-2.pcap")).unwrap();
        write_n(&mut recorder, 1, 100);

        // x-3.pcap, untouched, is deleted normally.
        write_n(&mut recorder, 1, 100);
        let files = recorder.finish().unwrap();
        assert_eq!(files, [dir.0.join("x-4.pcap")]);
        assert_eq!(names(&dir.0), ["x-0.pcap", "x-1.pcap", "x-4.pcap"]);
        assert_eq!(counts(&files), vec![1]);
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    }

    fn fill_a_small_filesystem(format: Format) {
        let fs = Tmpfs::new("256k");
        let mut config = config(&fs.0.0, "full-%d.pcap", Rotation::default());
        config.format = format;
        let mut recorder = Recorder::create(config).unwrap();
        let data = frame(0, 1500);
        let mut written = 0u64;
        let err = loop {
            match recorder.write(T0 + written * 1000, 1500, &data) {
                Ok(()) => written += 1,
                Err(e) => break e,
            }
            assert!(written < 1000, "the filesystem never filled up");
        };
        match &err {
            RecordError::Io {
                source, operation, ..
            } => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{err:?}");
                assert_eq!(*operation, "write a record to");
            }
            other => panic!("{other:?}"),
        }
        assert!(written > 100, "only {written} packets fit");
        assert_eq!(recorder.packets(), written);
        assert!(matches!(
            recorder.write(T0, 1500, &data),
            Err(RecordError::Finished)
        ));
        let (header, record) = match format {
            Format::Pcap => (24, 16 + 1500),
            Format::PcapNg => (60, 32 + 1500),
        };
        let files = recorder.finish().unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(
            std::fs::metadata(&files[0]).unwrap().len(),
            header + written * record
        );
        assert_eq!(counts(&files), vec![written as usize]);

        // A new file whose header does not fit is removed again.
        let config = self::config(&fs.0.0, "header-%d.pcap", Rotation::default());
        match Recorder::create(config) {
            Err(RecordError::Io {
                operation, source, ..
            }) => {
                assert_eq!(operation, "write the header of");
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(names(&fs.0.0), ["full-0.pcap"]);
    }

    #[test]
    fn enospc_leaves_whole_records_and_ends_the_recording() {
        fill_a_small_filesystem(Format::Pcap);
        fill_a_small_filesystem(Format::PcapNg);
    }
}
