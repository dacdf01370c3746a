//! The recordings' journal: what the daemon needs to resume each running
//! recording after a restart (an upgrade, a crash, the OOM killer): who
//! asked for it, what was asked, where its files are and which number the
//! next one takes. One JSON file per recording in the state directory
//! (`--state-dir`), written whole (a temporary file synced, then renamed)
//! when the recording starts and whenever its files change, and removed
//! when it ends for good. A daemon shut down (SIGTERM) keeps the entries:
//! its recordings go on at the next start.
//!
//! The directory is root's alone (every component belongs to root and is
//! writable by nobody else; it is made `0700`), and its files are `0600`:
//! requests name other users' filters and interfaces. What an entry says
//! is still checked again when it is used: the policy grants the request
//! anew, and only files that are the very ones the recording made are
//! touched (see `files::repair`).

use std::{
    fs::File,
    io::{self, Read as _, Write as _},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

use pktd_proto::RecordingRequest;
use rustix::fs::{AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};

use super::files::JournalFile;
use crate::paths::{DirectoryError, open_root_directory};

/// The format of an entry; another one is not read.
const VERSION: u32 = 1;
/// The largest entry read back: a request is a few kilobytes, and each
/// file kept adds about a hundred bytes (a recording without `max_files`
/// or an allowance keeps them all).
const MAX_ENTRY: u64 = 64 << 20;
/// The most entries read back at a start.
const MAX_ENTRIES: usize = 4096;

/// One recording, as the journal keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// [`VERSION`].
    pub version: u32,
    /// Whose recording it is: the client's uid and gid, which the policy
    /// judges again at the resume.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// What the client asked for.
    pub request: RecordingRequest,
    /// The principal's record directory the files are under (to repair
    /// them even when the policy no longer grants the recording).
    pub directory: PathBuf,
    /// The recording's files on disk, oldest first; the last is the one
    /// being written.
    pub files: Vec<JournalFile>,
    /// The number the next file takes.
    pub next_index: u64,
}

impl Entry {
    /// An entry of the current format.
    pub fn new(
        (uid, gid): (u32, u32),
        request: RecordingRequest,
        directory: PathBuf,
        (files, next_index): (Vec<JournalFile>, u64),
    ) -> Self {
        Self {
            version: VERSION,
            uid,
            gid,
            request,
            directory,
            files,
            next_index,
        }
    }
}

/// The state directory, held open.
#[derive(Debug)]
pub struct Journal {
    fd: OwnedFd,
    path: PathBuf,
}

impl Journal {
    /// Opens `path`, creating what is missing (see the module for the
    /// checks), and makes it `0700`. Blocking.
    pub fn open(path: &Path) -> Result<Self, DirectoryError> {
        let fd = open_root_directory(path)?;
        // open_root_directory holds an O_PATH descriptor: reopen it for
        // the calls that need a real one.
        let fd = rustix::fs::openat(
            &fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|fd| rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map(|()| fd))
        .map_err(|source| DirectoryError::Io {
            operation: "open",
            path: path.to_owned(),
            source: source.into(),
        })?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes recording `id`'s entry whole, replacing the one it had.
    /// Blocking.
    pub fn save(&self, id: u64, entry: &Entry) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
        let temporary = format!(".{id}.json.new");
        let file = rustix::fs::openat(
            &self.fd,
            temporary.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut file = File::from(file);
        file.write_all(&text)?;
        file.sync_data()?;
        rustix::fs::renameat(&self.fd, temporary.as_str(), &self.fd, name(id).as_str())?;
        rustix::fs::fsync(&self.fd)?;
        Ok(())
    }

    /// Removes recording `id`'s entry (it has ended for good). Blocking.
    pub fn remove(&self, id: u64) {
        match rustix::fs::unlinkat(&self.fd, name(id).as_str(), AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(err) => tracing::warn!(recording = id, %err, "removing a journal entry"),
        }
    }

    /// The ids of the entries, in order (at most [`MAX_ENTRIES`], the
    /// first ones; the largest of all comes too, so that new ids go past
    /// every entry). Blocking.
    pub fn ids(&self) -> io::Result<(Vec<u64>, Option<u64>)> {
        let dir = rustix::fs::Dir::read_from(&self.fd)?;
        let mut ids = Vec::new();
        let mut largest = None;
        for item in dir {
            let item = item?;
            let Some(id) = item
                .file_name()
                .to_str()
                .ok()
                .and_then(|name| name.strip_suffix(".json"))
                .and_then(|id| id.parse::<u64>().ok())
            else {
                continue;
            };
            largest = largest.max(Some(id));
            ids.push(id);
            // Keep the smallest MAX_ENTRIES as the listing goes.
            if ids.len() > 2 * MAX_ENTRIES {
                ids.sort_unstable();
                ids.truncate(MAX_ENTRIES);
            }
        }
        ids.sort_unstable();
        if ids.len() > MAX_ENTRIES {
            tracing::warn!(
                max = MAX_ENTRIES,
                "more journal entries than are resumed at once"
            );
            ids.truncate(MAX_ENTRIES);
        }
        Ok((ids, largest))
    }

    /// Entry `id`, or why it cannot be read (it is then left for the
    /// operator). Blocking.
    pub fn entry(&self, id: u64) -> Result<Entry, String> {
        let file = rustix::fs::openat(
            &self.fd,
            name(id).as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| err.to_string())?;
        let mut text = Vec::new();
        File::from(file)
            .take(MAX_ENTRY)
            .read_to_end(&mut text)
            .map_err(|err| err.to_string())?;
        let entry: Entry = serde_json::from_slice(&text).map_err(|err| err.to_string())?;
        if entry.version != VERSION {
            return Err(format!(
                "format {} (this pktd reads {VERSION})",
                entry.version
            ));
        }
        Ok(entry)
    }
}

/// The file of recording `id`'s entry.
fn name(id: u64) -> String {
    format!("{id}.json")
}
