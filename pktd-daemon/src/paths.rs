//! Directories the daemon makes files in for others (record directories,
//! the socket's): opened one component at a time from `/` without
//! following a symbolic link on any of them (`openat2` with
//! `RESOLVE_NO_SYMLINKS`), each checked so that nobody but root (or, for a
//! user's own directory, that user) can change it, and then held open, so
//! that files are made relative to the descriptor and never through a path
//! someone could redirect.

use std::{
    io,
    os::fd::OwnedFd,
    path::{Component, Path, PathBuf},
};

use rustix::fs::{CWD, FileType, Mode, OFlags, ResolveFlags, Stat, fstat, mkdirat, openat2};

/// Why a directory was not used.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The path breaks a rule (see the module).
    #[error("{}: {reason}", path.display())]
    Unsafe {
        /// The component concerned.
        path: PathBuf,
        /// The rule.
        reason: &'static str,
    },
    /// A system call failed.
    #[error("cannot {operation} {}", path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The component concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Opens `base` from `/`, creating missing components `root:root 0755`:
/// every component must belong to root and be writable by nobody else (a
/// sticky directory such as `/tmp` is allowed on the way).
pub fn open_root_directory(base: &Path) -> Result<OwnedFd, DirectoryError> {
    if !base.is_absolute() {
        return Err(DirectoryError::Unsafe {
            path: base.to_owned(),
            reason: "the path must be absolute, without . or ..",
        });
    }
    let root = PathBuf::from("/");
    let mut fd = openat2(
        CWD,
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS,
    )
    .map_err(|source| DirectoryError::Io {
        operation: "open",
        path: root.clone(),
        source: source.into(),
    })?;
    let mut path = root;
    for component in base.components() {
        let name = match component {
            Component::RootDir => continue,
            Component::Normal(name) => name.to_str().ok_or_else(|| DirectoryError::Unsafe {
                path: base.to_owned(),
                reason: "the path is not UTF-8",
            })?,
            _ => {
                return Err(DirectoryError::Unsafe {
                    path: base.to_owned(),
                    reason: "the path must be absolute, without . or ..",
                });
            }
        };
        let stat = fstat(&fd).map_err(|source| DirectoryError::Io {
            operation: "inspect",
            path: path.clone(),
            source: source.into(),
        })?;
        check(&path, &stat, &[0], true)?;
        path.push(name);
        match mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(source) => {
                return Err(DirectoryError::Io {
                    operation: "create",
                    path,
                    source: source.into(),
                });
            }
        }
        fd = open_component(&fd, name, &path)?;
    }
    let stat = fstat(&fd).map_err(|source| DirectoryError::Io {
        operation: "inspect",
        path: path.clone(),
        source: source.into(),
    })?;
    check(&path, &stat, &[0], true)?;
    Ok(fd)
}

/// Opens directory `name` under `parent`, refusing a symlink.
pub fn open_component(
    parent: &OwnedFd,
    name: &str,
    path: &Path,
) -> Result<OwnedFd, DirectoryError> {
    openat2(
        parent,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
    )
    .map_err(|err| match err {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => DirectoryError::Unsafe {
            path: path.to_owned(),
            reason: "a symbolic link or not a directory",
        },
        source => DirectoryError::Io {
            operation: "open",
            path: path.to_owned(),
            source: source.into(),
        },
    })
}

/// Checks that `stat` is a directory owned by one of `owners` and writable
/// by nobody else (a sticky directory may be, when `sticky_ok`).
pub fn check(
    path: &Path,
    stat: &Stat,
    owners: &[u32],
    sticky_ok: bool,
) -> Result<(), DirectoryError> {
    let unsafe_because = |reason| DirectoryError::Unsafe {
        path: path.to_owned(),
        reason,
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return Err(unsafe_because("not a directory"));
    }
    if !owners.contains(&stat.st_uid) {
        return Err(unsafe_because(
            "owned by someone other than root or the recording's user",
        ));
    }
    let others_write = stat.st_mode & 0o022 != 0;
    let sticky = stat.st_mode & 0o1000 != 0;
    if others_write && !(sticky_ok && sticky) {
        return Err(unsafe_because("writable by group or others"));
    }
    Ok(())
}

/// The contents of a file only pktd may read: an absolute path to a
/// regular file, not a link, not group- or world-accessible, and owned by
/// pktd's uid; at most `max` bytes (a key, a token).
pub fn read_private_file(path: &Path, max: usize) -> Result<Vec<u8>, String> {
    use std::{
        fs::OpenOptions,
        io::Read as _,
        os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    };
    if !path.is_absolute() {
        return Err("not an absolute path".to_owned());
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| err.to_string())?;
    let metadata = file.metadata().map_err(|err| err.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".to_owned());
    }
    if metadata.mode() & 0o077 != 0 {
        return Err(format!(
            "mode {:o}: group or others may access it (chmod 600)",
            metadata.mode() & 0o777
        ));
    }
    let euid = rustix::process::geteuid().as_raw();
    if metadata.uid() != euid {
        return Err(format!(
            "owned by uid {}, not by pktd's uid {euid}",
            metadata.uid()
        ));
    }
    let mut contents = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut contents)
        .map_err(|err| err.to_string())?;
    if contents.len() > max {
        return Err(format!("longer than {max} bytes"));
    }
    Ok(contents)
}
