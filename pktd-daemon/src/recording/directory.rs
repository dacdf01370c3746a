//! Where a user's recordings go: `RECORD_DIRECTORY/UID/`. The principal's
//! directory is opened and checked by [`crate::paths`]; the user's own is
//! checked too, and both are held open: files are made and deleted
//! relative to the descriptor, never through a path a user could redirect.
//!
//! Ownership and modes:
//! - every component of the principal's `record_directory`, itself
//!   included, must belong to root and be writable by nobody else (a
//!   sticky directory such as `/tmp` is allowed on the way); missing ones
//!   are created `root:root 0755`;
//! - each user's own directory `UID` belongs to that user (`0700` when pktd
//!   creates it, never writable by group or others), so that the user can
//!   read and delete its recordings and nobody else can;
//! - its files belong to the user, mode `0640`.

use std::{
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

use rustix::fs::{AtFlags, Gid, Mode, Uid, chownat, fstat, mkdirat};

pub use crate::paths::DirectoryError;
use crate::paths::{check, open_component, open_root_directory};

/// A user's record directory, held open.
#[derive(Debug)]
pub struct UserDirectory {
    fd: OwnedFd,
    /// `base/UID`.
    path: PathBuf,
    base: PathBuf,
}

impl UserDirectory {
    /// Opens `base/UID`, creating what is missing, checking every
    /// component (see the module).
    pub fn open(base: &Path, uid: u32, gid: u32) -> Result<Self, DirectoryError> {
        let base_fd = open_root_directory(base)?;
        let name = uid.to_string();
        let path = base.join(&name);
        let io = |operation| {
            let path = path.clone();
            move |source: rustix::io::Errno| DirectoryError::Io {
                operation,
                path,
                source: source.into(),
            }
        };
        match mkdirat(&base_fd, name.as_str(), Mode::from_raw_mode(0o700)) {
            Ok(()) => chownat(
                &base_fd,
                name.as_str(),
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io("hand over"))?,
            Err(rustix::io::Errno::EXIST) => {}
            Err(err) => return Err(io("create")(err)),
        }
        let fd = open_component(&base_fd, &name, &path)?;
        let stat = fstat(&fd).map_err(io("inspect"))?;
        check(&path, &stat, &[0, uid], false)?;
        Ok(Self {
            fd,
            path,
            base: base.to_owned(),
        })
    }

    /// The directory, to make and delete files relative to.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Its path, for messages and clients.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The principal's directory it is in.
    pub fn base(&self) -> &Path {
        &self.base
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    /// A scratch directory under /tmp, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let path = std::env::temp_dir().join(format!("pktd-dir-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            Self(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn unsafe_reason(result: Result<UserDirectory, DirectoryError>) -> &'static str {
        match result {
            Err(DirectoryError::Unsafe { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn missing_directories_are_made_with_their_owners_and_modes() {
        let scratch = Scratch::new("made");
        let base = scratch.0.join("a/b");
        let user = UserDirectory::open(&base, 4242, 4343).expect("made");
        assert_eq!(user.path(), base.join("4242"));
        let meta = std::fs::metadata(&base).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o755));
        let meta = std::fs::metadata(base.join("4242")).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (4242, 4343, 0o700)
        );
        // Opening again finds them.
        UserDirectory::open(&base, 4242, 4343).expect("opened again");
    }

    #[test]
    fn a_symlink_anywhere_on_the_path_is_refused() {
        let scratch = Scratch::new("link");
        std::fs::create_dir_all(scratch.0.join("real")).unwrap();
        std::os::unix::fs::symlink(scratch.0.join("real"), scratch.0.join("link")).unwrap();
        assert_eq!(
            unsafe_reason(UserDirectory::open(&scratch.0.join("link/rec"), 0, 0)),
            "a symbolic link or not a directory"
        );
        // The user's own directory replaced by a link, too.
        std::fs::create_dir_all(scratch.0.join("base")).unwrap();
        std::os::unix::fs::symlink("/etc", scratch.0.join("base/4242")).unwrap();
        assert_eq!(
            unsafe_reason(UserDirectory::open(&scratch.0.join("base"), 4242, 4242)),
            "a symbolic link or not a directory"
        );
        assert!(
            !std::path::Path::new("/etc/4242").exists(),
            "nothing was made where the link pointed"
        );
    }

    #[test]
    fn directories_others_can_change_are_refused() {
        let scratch = Scratch::new("writable");
        std::fs::create_dir_all(scratch.0.join("open/rec")).unwrap();
        std::fs::set_permissions(
            scratch.0.join("open"),
            std::fs::Permissions::from_mode(0o775),
        )
        .unwrap();
        assert_eq!(
            unsafe_reason(UserDirectory::open(&scratch.0.join("open/rec"), 0, 0)),
            "writable by group or others"
        );
        std::fs::create_dir_all(scratch.0.join("theirs/rec")).unwrap();
        std::os::unix::fs::chown(scratch.0.join("theirs"), Some(4242), None).unwrap();
        assert_eq!(
            unsafe_reason(UserDirectory::open(&scratch.0.join("theirs/rec"), 4242, 0)),
            "owned by someone other than root or the recording's user"
        );
        // Another user's directory where this user's should be.
        std::fs::create_dir_all(scratch.0.join("base/4242")).unwrap();
        std::os::unix::fs::chown(scratch.0.join("base/4242"), Some(4343), None).unwrap();
        assert_eq!(
            unsafe_reason(UserDirectory::open(&scratch.0.join("base"), 4242, 4242)),
            "owned by someone other than root or the recording's user"
        );
        assert!(matches!(
            UserDirectory::open(Path::new("relative/dir"), 0, 0),
            Err(DirectoryError::Unsafe { .. })
        ));
    }
}
