//! Savefiles on real file systems, read back by tcpdump.

use super::*;
use std::{
    os::unix::fs::PermissionsExt,
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
    thread::sleep,
};

const T0: u64 = 1_700_000_000_000_000_000;

/// A fresh record directory under /tmp: `.0` is root's own directory
/// in it (`BASE/0`), where the files go; the whole is removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let base = PathBuf::from(format!(
            "/tmp/pktd-record-{tag}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&base);
        let user = UserDirectory::open(&base, 0, 0).expect("a record directory");
        TempDir(user.path().to_owned())
    }

    fn base(&self) -> &Path {
        self.0.parent().expect("a user directory has a parent")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.base());
    }
}

/// A small tmpfs mounted on a fresh directory, unmounted on drop (also
/// when a test panics).
struct Tmpfs(TempDir);

impl Tmpfs {
    fn new(size: &str) -> Self {
        let dir = TempDir::new("tmpfs");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
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

fn write_n(files: &mut Savefiles, n: u64, len: usize) {
    for i in 0..n {
        let data = frame(i as u16, len);
        files
            .write(T0 + i * 1_000_000, data.len() as u32, &data)
            .unwrap();
    }
    files.flush().unwrap();
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

/// Files in the user directory `dir` (`BASE/0`), no disk allowance.
fn config(dir: &Path, pattern: &str, limits: Limits) -> FilesConfig {
    let base = dir.parent().expect("a user directory has a parent");
    FilesConfig {
        directory: Arc::new(UserDirectory::open(base, 0, 0).expect("the record directory")),
        pattern: Pattern::parse(pattern).unwrap(),
        limits,
        format: Format::Pcap,
        snaplen: 0,
        info: CaptureInfo::default(),
        account: allowance(dir, 0),
        owner: None,
    }
}

/// An account of `limit` bytes (0: none) for `dir`'s record directory.
fn allowance(dir: &Path, limit: u64) -> Arc<Account> {
    let base = dir.parent().expect("a user directory has a parent");
    Arc::new(Account::open(base, limit).expect("measuring the record directory"))
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
fn savefiles_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Savefiles>();
    send_sync::<FilesError>();
}

#[test]
fn zero_limits_are_refused() {
    let dir = TempDir::new("zero");
    for rotation in [
        Limits {
            seconds: Some(Duration::ZERO),
            ..Limits::default()
        },
        Limits {
            bytes: Some(0),
            ..Limits::default()
        },
        Limits {
            packets: Some(0),
            ..Limits::default()
        },
        Limits {
            max_files: Some(0),
            ..Limits::default()
        },
    ] {
        let err = Savefiles::create(config(&dir.0, "z%d", rotation)).unwrap_err();
        assert!(matches!(err, FilesError::Limits { .. }), "{err:?}");
    }
    assert!(names(&dir.0).is_empty());
}

#[test]
fn one_file_without_rotation() {
    let dir = TempDir::new("one");
    let mut files = Savefiles::create(config(&dir.0, "one-%d.pcap", Limits::default())).unwrap();
    assert_eq!(files.current_file(), dir.0.join("one-0.pcap"));
    write_n(&mut files, 25, 100);
    assert_eq!(files.packets(), 25);
    assert_eq!(files.bytes(), 24 + 25 * 116);
    assert_eq!(files.disk_usage(), 24 + 25 * 116);
    let files = files.finish().unwrap();
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
    let rotation = Limits {
        bytes: Some(limit),
        ..Limits::default()
    };
    let mut files = Savefiles::create(config(&dir.0, "b-%d.pcap", rotation)).unwrap();
    write_n(&mut files, 10, 100);
    // A packet larger than the limit still gets written, alone in a file.
    let big = frame(99, 1000);
    files.write(T0, 1000, &big).unwrap();
    write_n(&mut files, 1, 100);
    let files = files.finish().unwrap();
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
        Limits {
            packets: Some(4),
            ..Limits::default()
        },
    );
    config.format = Format::PcapNg;
    config.snaplen = 61;
    config.info = CaptureInfo {
        application: "pktd test".into(),
        interface: "veth9".into(),
        description: "netns lab".into(),
        filter: "udp".into(),
    };
    let header = savefile::header(Format::PcapNg, LINKTYPE_ETHERNET, 61, &config.info)
        .unwrap()
        .len() as u64;
    let stats = CaptureStats {
        timestamp_ns: T0,
        received: 12,
        dropped: 1,
        matched: 11,
        delivered: 10,
    };
    let statistics = savefile::statistics(Format::PcapNg, &stats).unwrap().len() as u64;
    let mut files = Savefiles::create(config).unwrap();
    // Every file closed from now on ends with the counters.
    files.set_statistics(stats);
    write_n(&mut files, 10, 100);
    assert_eq!(files.packets(), 10);
    // 3 headers, 10 records of 32 + 64 (61 rounded up), and the
    // statistics of the two files closed so far.
    assert_eq!(files.bytes(), 3 * header + 10 * 96 + 2 * statistics);
    assert_eq!(files.disk_usage(), files.bytes());
    let files = files.finish().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(counts(&files), vec![4, 4, 2]);
    let sizes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(sizes, 3 * (header + statistics) + 10 * 96);
    // What each file says of its capture, as capinfos reads it.
    for file in &files {
        let capinfos = Command::new("capinfos")
            .arg(file)
            .output()
            .expect("capinfos");
        let text = String::from_utf8_lossy(&capinfos.stdout);
        for expected in [
            "Capture application: pktd test",
            "Name = veth9",
            "Description = netns lab",
            "Filter string = udp",
            "Number of stat entries = 1",
        ] {
            assert!(text.contains(expected), "{expected:?} not in {text}");
        }
    }
}

#[test]
fn rotates_by_seconds_with_and_without_traffic() {
    let dir = TempDir::new("seconds");
    let rotation = Limits {
        seconds: Some(Duration::from_millis(200)),
        ..Limits::default()
    };
    let mut files = Savefiles::create(config(&dir.0, "s-%d.pcap", rotation)).unwrap();
    write_n(&mut files, 2, 80);
    files.tick(Instant::now()).unwrap();
    assert_eq!(files.files().len(), 1);
    sleep(Duration::from_millis(250));
    // No traffic: tick rotates.
    files.tick(Instant::now()).unwrap();
    assert_eq!(files.files().len(), 2);
    assert_eq!(files.current_file(), dir.0.join("s-1.pcap"));
    sleep(Duration::from_millis(250));
    files.tick(Instant::now()).unwrap();
    assert_eq!(files.files().len(), 3);
    write_n(&mut files, 1, 80);
    assert_eq!(files.files().len(), 3);
    sleep(Duration::from_millis(250));
    // Traffic: write rotates.
    write_n(&mut files, 3, 80);
    assert_eq!(files.files().len(), 4);
    let files = files.finish().unwrap();
    assert_eq!(counts(&files), vec![2, 0, 1, 3]);
}

#[test]
fn max_files_deletes_the_oldest() {
    let dir = TempDir::new("max");
    // Someone else's file in the directory is never touched.
    std::fs::write(dir.0.join("other.pcap"), b"not ours").unwrap();
    let rotation = Limits {
        packets: Some(2),
        max_files: Some(3),
        ..Limits::default()
    };
    let mut files = Savefiles::create(config(&dir.0, "m-%d.pcap", rotation)).unwrap();
    write_n(&mut files, 11, 100);
    assert_eq!(files.packets(), 11);
    let files = files.finish().unwrap();
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
        Limits {
            packets: Some(5),
            ..Limits::default()
        },
    );
    // A full file: 24 + 5 * 116 = 604 bytes.
    let allowance = 1300;
    config.account = self::allowance(&dir.0, allowance);
    let mut files = Savefiles::create(config).unwrap();
    for i in 0..23 {
        write_n(&mut files, 1, 100);
        assert!(files.disk_usage() <= allowance, "after packet {i}");
        let on_disk: u64 = files
            .files()
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert_eq!(on_disk, files.disk_usage());
    }
    assert_eq!(files.packets(), 23);
    let files = files.finish().unwrap();
    assert_eq!(files, ["d-3.pcap", "d-4.pcap"].map(|n| dir.0.join(n)));
    assert_eq!(names(&dir.0), ["d-3.pcap", "d-4.pcap"]);
    assert_eq!(counts(&files), vec![5, 3]);
}

#[test]
fn disk_allowance_ends_when_the_current_file_alone_exceeds_it() {
    let dir = TempDir::new("alone");
    let mut config = config(&dir.0, "a-%d.pcap", Limits::default());
    config.account = allowance(&dir.0, 500);
    let mut files = Savefiles::create(config).unwrap();
    // 24 + 4 * 116 = 488; a fifth packet would make 604.
    write_n(&mut files, 4, 100);
    let data = frame(4, 100);
    match files.write(T0, 100, &data) {
        Err(FilesError::DiskAllowance {
            allowance: 500,
            needed: 604,
            path,
        }) => assert_eq!(path, dir.0.join("a-0.pcap")),
        other => panic!("{other:?}"),
    }
    assert!(files.is_finished());
    assert!(matches!(
        files.write(T0, 100, &data),
        Err(FilesError::Finished)
    ));
    assert!(matches!(
        files.tick(Instant::now()),
        Err(FilesError::Finished)
    ));
    let files = files.finish().unwrap();
    assert_eq!(counts(&files), vec![4]);

    // An allowance smaller than the header is refused before any file.
    let dir = TempDir::new("tiny");
    let mut config = self::config(&dir.0, "a-%d.pcap", Limits::default());
    config.account = allowance(&dir.0, 10);
    assert!(matches!(
        Savefiles::create(config),
        Err(FilesError::DiskAllowance { .. })
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
    match Savefiles::create(config(&dir.0, "l-%d.pcap", Limits::default())) {
        Err(FilesError::Exists { path }) => assert_eq!(path, dir.0.join("l-0.pcap")),
        other => panic!("{other:?}"),
    }
    // A dangling one too: O_EXCL never follows it.
    let dangling = outside.0.join("created-through-symlink");
    std::os::unix::fs::symlink(&dangling, dir.0.join("k-0.pcap")).unwrap();
    assert!(matches!(
        Savefiles::create(config(&dir.0, "k-%d.pcap", Limits::default())),
        Err(FilesError::Exists { .. })
    ));
    assert!(!dangling.exists());

    // At a rotation's name: the rotation fails, nothing is skipped.
    let rotation = Limits {
        packets: Some(1),
        ..Limits::default()
    };
    let mut files = Savefiles::create(config(&dir.0, "r-%d.pcap", rotation)).unwrap();
    let planted = dir.0.join("r-1.pcap");
    std::os::unix::fs::symlink(&target, &planted).unwrap();
    write_n(&mut files, 1, 100);
    let data = frame(1, 100);
    match files.write(T0, 100, &data) {
        Err(FilesError::Exists { path }) => assert_eq!(path, planted),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        files.write(T0, 100, &data),
        Err(FilesError::Finished)
    ));
    let files = files.finish().unwrap();
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
    let rotation = Limits {
        packets: Some(1),
        ..Limits::default()
    };
    let mut files = Savefiles::create(config(&dir.0, "f-%d.pcap", rotation)).unwrap();
    write_n(&mut files, 1, 100);
    assert!(matches!(
        files.write(T0, 100, &data),
        Err(FilesError::Exists { .. })
    ));
    assert_eq!(std::fs::read(dir.0.join("f-1.pcap")).unwrap(), b"theirs");
}

#[test]
fn a_replaced_file_is_not_deleted() {
    let dir = TempDir::new("replaced");
    let outside = TempDir::new("outside");
    let target = outside.0.join("precious");
    std::fs::write(&target, b"precious").unwrap();
    let rotation = Limits {
        packets: Some(1),
        max_files: Some(1),
        ..Limits::default()
    };
    let mut files = Savefiles::create(config(&dir.0, "x-%d.pcap", rotation)).unwrap();
    write_n(&mut files, 1, 100);

    // x-0.pcap replaced by a symlink before the rotation deletes it.
    let first = dir.0.join("x-0.pcap");
    std::fs::remove_file(&first).unwrap();
    std::os::unix::fs::symlink(&target, &first).unwrap();
    write_n(&mut files, 1, 100);
    assert_eq!(files.files(), [dir.0.join("x-1.pcap")]);
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
    write_n(&mut files, 1, 100);
    assert_eq!(std::fs::read(&second).unwrap(), b"theirs");

    // x-2.pcap deleted by someone else: forgotten, no error.
    std::fs::remove_file(dir.0.join("x-2.pcap")).unwrap();
    write_n(&mut files, 1, 100);

    // x-3.pcap, untouched, is deleted normally.
    write_n(&mut files, 1, 100);
    let files = files.finish().unwrap();
    assert_eq!(files, [dir.0.join("x-4.pcap")]);
    assert_eq!(names(&dir.0), ["x-0.pcap", "x-1.pcap", "x-4.pcap"]);
    assert_eq!(counts(&files), vec![1]);
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
}

/// Fills a 256 KiB filesystem with batches of `batch` packets: one
/// packet and a flush, or [`Savefiles::write_batch`].
fn fill_a_small_filesystem(format: Format, batch: u64) {
    let fs = Tmpfs::new("256k");
    let mut config = config(&fs.0.0, "full-%d.pcap", Limits::default());
    config.format = format;
    let mut files = Savefiles::create(config).unwrap();
    let data = frame(0, 1500);
    // Packets in whole batches written.
    let mut written = 0u64;
    let err = loop {
        let result = if batch == 1 {
            files
                .write(T0 + written * 1000, 1500, &data)
                .and_then(|()| files.flush())
        } else {
            files.write_batch((0..batch).map(|i| Frame {
                timestamp_ns: T0 + (written + i) * 1000,
                wire_len: 1500,
                direction: PacketDirection::Unknown,
                data: &data,
            }))
        };
        match result {
            Ok(()) => written += batch,
            Err(e) => break e,
        }
        assert_eq!(files.packets(), written);
        assert!(written < 1000, "the filesystem never filled up");
    };
    match &err {
        FilesError::Io {
            source, operation, ..
        } => {
            assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{err:?}");
            assert_eq!(*operation, "write a packet to");
        }
        other => panic!("{other:?}"),
    }
    assert!(written > 100, "only {written} packets fit");
    // Of the failed batch, the packets that reached the file whole are
    // kept and counted, and no others.
    let kept = files.packets();
    assert!(
        (written..written + batch).contains(&kept),
        "{kept} packets after {written} in whole batches"
    );
    if batch > 1 {
        assert!(kept > written, "a batch fails only after some of it fit");
    }
    assert!(matches!(
        files.write(T0, 1500, &data),
        Err(FilesError::Finished)
    ));
    let header = savefile::header(format, LINKTYPE_ETHERNET, 0, &CaptureInfo::default())
        .unwrap()
        .len() as u64;
    let record = match format {
        Format::Pcap => 16 + 1500,
        Format::PcapNg => 32 + 1500,
    };
    let files = files.finish().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().len(),
        header + kept * record
    );
    assert_eq!(counts(&files), vec![kept as usize]);
    // A new file whose header does not fit is removed again.
    let config = self::config(&fs.0.0, "header-%d.pcap", Limits::default());
    match Savefiles::create(config) {
        Err(FilesError::Io {
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
    fill_a_small_filesystem(Format::Pcap, 1);
    fill_a_small_filesystem(Format::PcapNg, 1);
    fill_a_small_filesystem(Format::Pcap, 40);
    fill_a_small_filesystem(Format::PcapNg, 40);
}

/// What a kill leaves between a rotation and the journal's save: files the
/// journal does not name (one batch rotated several times, max_files
/// deleting some of them), a file that was never handed to its owner, a
/// torn last file. The resumed recording takes the owner's files, cuts the
/// last one back, never reuses a number, and keeps to max_files.
#[test]
fn a_resume_takes_unjournaled_files_and_never_reuses_a_number() {
    let dir = TempDir::new("resume");
    let limits = Limits {
        packets: Some(1),
        max_files: Some(3),
        ..Limits::default()
    };
    let mut files = Savefiles::create(config(&dir.0, "r-%d.pcap", limits.clone())).unwrap();
    files.write(T0, 60, &frame(0, 60)).unwrap();
    // The journal as saved after the first packet.
    let (journaled, next_index) = files.journal();
    for seq in 1..6 {
        files.write(T0 + seq, 60, &frame(seq as u16, 60)).unwrap();
    }
    let (now, now_next) = files.journal();
    drop(files);
    assert_eq!(now_next, 6);
    assert_eq!(
        now.iter()
            .map(|file| file.name.as_str())
            .collect::<Vec<_>>(),
        ["r-3.pcap", "r-4.pcap", "r-5.pcap"]
    );
    // A file made but never handed over (not the owner's: root's here is
    // the owner, so another uid's), past a gap; the last file torn.
    let stray = dir.0.join("r-7.pcap");
    std::fs::write(&stray, b"not ours").unwrap();
    std::os::unix::fs::chown(&stray, Some(4242), Some(4242)).unwrap();
    let last = dir.0.join("r-5.pcap");
    let whole = std::fs::metadata(&last).unwrap().len();
    {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap();
        file.write_all(&[1, 2, 3]).unwrap();
    }

    let config = config(&dir.0, "r-%d.pcap", limits);
    let (kept, next) = repair(
        &config.directory,
        &journaled,
        &config.pattern,
        next_index,
        0,
    );
    assert_eq!(next, 8, "past every name there, the stray one included");
    assert_eq!(
        kept.iter()
            .map(|kept| kept.name.as_str())
            .collect::<Vec<_>>(),
        ["r-3.pcap", "r-4.pcap", "r-5.pcap"],
        "the journaled r-0 is gone; the owner's unjournaled files are taken, the stray is not"
    );
    assert_eq!(std::fs::metadata(&last).unwrap().len(), whole);
    let mut files = Savefiles::resume(config, kept, next).unwrap();
    files.write(T0 + 10, 60, &frame(10, 60)).unwrap();
    assert_eq!(
        files.names(),
        ["r-4.pcap", "r-5.pcap", "r-8.pcap"],
        "max_files kept, numbers after the stray"
    );
    files.finish().unwrap();
    assert_eq!(std::fs::read(&stray).unwrap(), b"not ours");
    assert!(
        !dir.0.join("r-3.pcap").exists(),
        "the oldest went for max_files"
    );
    for name in ["r-4.pcap", "r-5.pcap", "r-8.pcap"] {
        let output = Command::new("tcpdump")
            .arg("-r")
            .arg(dir.0.join(name))
            .output()
            .unwrap();
        assert!(output.status.success(), "{name}: {:?}", output);
    }
}
