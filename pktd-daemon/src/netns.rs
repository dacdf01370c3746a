//! Network namespaces, named the way operators name them: `ip netns` names
//! (`/run/netns/NAME`) or a process's namespace (`/proc/PID/ns/net`).
//!
//! Work that must happen inside a namespace (resolving an interface,
//! attaching a program, opening an AF_PACKET socket) runs on a short-lived
//! thread that enters it, so the daemon's own threads never change
//! namespace.

use std::{
    fmt,
    fs::File,
    os::fd::AsFd,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::sys;

/// Errors naming or entering a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The name is not an `ip netns` name nor a `/proc/PID/ns/net` path.
    #[error("invalid network namespace {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The namespace file could not be opened.
    #[error("cannot open network namespace {path}")]
    Open {
        /// The namespace file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// setns(2) failed.
    #[error("cannot enter network namespace {path}")]
    Enter {
        /// The namespace file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A network namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Netns {
    /// The daemon's own namespace.
    Current,
    /// A namespace file: `/run/netns/NAME` or `/proc/PID/ns/net`.
    File(PathBuf),
}

impl Netns {
    /// Parses an operator's name: empty or `-` for the daemon's namespace,
    /// `/proc/PID/ns/net`, or an `ip netns` name.
    pub fn parse(name: &str) -> Result<Self, NetnsError> {
        let invalid = |reason| NetnsError::InvalidName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() || name == "-" {
            return Ok(Self::Current);
        }
        if let Some(rest) = name.strip_prefix("/proc/") {
            let pid = rest
                .strip_suffix("/ns/net")
                .ok_or_else(|| invalid("a path must be /proc/PID/ns/net"))?;
            // A pid has at most 7 digits (pid_max is at most 2^22).
            if pid.is_empty() || pid.len() > 10 || !pid.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("a path must be /proc/PID/ns/net"));
            }
            return Ok(Self::File(PathBuf::from(name)));
        }
        if name.len() > 255
            || name == "."
            || name == ".."
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(invalid(
                "an ip netns name is 1 to 255 of A-Z a-z 0-9 . _ -, not . or ..",
            ));
        }
        Ok(Self::File(Path::new("/run/netns").join(name)))
    }

    /// The namespace's identity (device and inode of its nsfs file): two
    /// names of one namespace give the same key.
    pub fn key(&self) -> Result<(u64, u64), NetnsError> {
        Ok(self.open()?.key())
    }

    fn path(&self) -> PathBuf {
        match self {
            Self::Current => PathBuf::from("/proc/thread-self/ns/net"),
            Self::File(path) => path.clone(),
        }
    }

    /// Opens the namespace: from here on the handle names it, whatever
    /// becomes of the name (a process that exits, a pid reused, a file
    /// replaced).
    pub fn open(&self) -> Result<NetnsHandle, NetnsError> {
        let path = self.path();
        let file = File::open(&path).map_err(|source| NetnsError::Open {
            path: path.clone(),
            source,
        })?;
        let meta = file.metadata().map_err(|source| NetnsError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(NetnsHandle {
            file: Arc::new(file),
            name: self.clone(),
            key: (meta.dev(), meta.ino()),
        })
    }

    /// Runs `work` on a thread inside this namespace and returns its result.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        match self {
            Self::Current => Ok(work()),
            Self::File(_) => self.open()?.run(work),
        }
    }
}

/// A network namespace held open (see [`Netns::open`]).
#[derive(Clone, Debug)]
pub struct NetnsHandle {
    file: Arc<File>,
    name: Netns,
    key: (u64, u64),
}

impl NetnsHandle {
    /// The namespace's identity (device and inode).
    pub fn key(&self) -> (u64, u64) {
        self.key
    }

    /// The name it was opened by.
    pub fn name(&self) -> &Netns {
        &self.name
    }

    /// Runs `work` on a thread inside this namespace and returns its result.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    sys::enter_netns(self.file.as_fd()).map_err(|source| NetnsError::Enter {
                        path: self.name.path(),
                        source,
                    })?;
                    Ok(work())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl fmt::Display for NetnsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.name.fmt(f)
    }
}

/// The index of interface `name` in the calling thread's namespace (call
/// it inside [`Netns::run`] for another namespace).
pub fn interface_index(name: &str) -> std::io::Result<u32> {
    sys::interface_index(name)
}

/// Most ip-netns namespaces a listing looks at.
pub const MAX_NAMED: usize = 256;

/// The names of the ip-netns namespaces (`/run/netns`), sorted, at most
/// [`MAX_NAMED`]; none when the directory does not exist.
pub fn named() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| Netns::parse(name).is_ok())
        .collect();
    names.sort();
    names.truncate(MAX_NAMED);
    names
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Current => f.write_str("(pktd's own)"),
            Self::File(path) => match path.strip_prefix("/run/netns") {
                Ok(name) => write!(f, "{}", name.display()),
                Err(_) => write!(f, "{}", path.display()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_names_parse_and_hostile_ones_do_not() {
        assert_eq!(Netns::parse("").unwrap(), Netns::Current);
        assert_eq!(Netns::parse("-").unwrap(), Netns::Current);
        assert_eq!(
            Netns::parse("lab-1").unwrap(),
            Netns::File(PathBuf::from("/run/netns/lab-1"))
        );
        assert_eq!(
            Netns::parse("/proc/42/ns/net").unwrap(),
            Netns::File(PathBuf::from("/proc/42/ns/net"))
        );
        for hostile in [
            "..",
            ".",
            "../../etc/passwd",
            "a/b",
            "/etc/passwd",
            "/proc/self/ns/net",
            "/proc/42/ns/mnt",
            "/proc//ns/net",
            "name with space",
        ] {
            assert!(
                matches!(Netns::parse(hostile), Err(NetnsError::InvalidName { .. })),
                "{hostile:?} accepted"
            );
        }
        assert!(Netns::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn two_names_of_one_namespace_share_a_key() {
        let by_pid = Netns::parse(&format!("/proc/{}/ns/net", std::process::id())).unwrap();
        assert_eq!(by_pid.key().unwrap(), Netns::Current.key().unwrap());
        assert!(matches!(
            Netns::parse("pktd-surely-absent").unwrap().key(),
            Err(NetnsError::Open { .. })
        ));
    }
}
