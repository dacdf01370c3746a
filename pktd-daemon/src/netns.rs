//! Network namespaces, named the way operators name them: `ip netns` names
//! (`/run/netns/NAME`), a process's namespace (`/proc/PID/ns/net`), a
//! container's (`container:ID`, found through the cgroups in `/proc`), or a
//! Kubernetes pod's (`pod:NAMESPACE/NAME`, asked of the container runtime
//! through its CRI socket, `cri.rs`).
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
    /// The container runtime named no network namespace for a pod.
    #[error("pod {pod}: {reason}")]
    Pod {
        /// The pod, `NAMESPACE/NAME`.
        pod: String,
        /// Why.
        reason: String,
    },
    /// No process, or more than one container, matches a container ID.
    #[error("container {id}: {reason}")]
    Container {
        /// The ID as given.
        id: String,
        /// What was found.
        reason: String,
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
    /// A container's namespace: `container:ID`, 12 to 64 lowercase hex
    /// digits of its 64-digit ID (as `docker ps` and `crictl ps` show it).
    Container(String),
    /// A Kubernetes pod's namespace: `pod:NAMESPACE/NAME`, its ready
    /// sandbox's, as the container runtime says through its CRI socket.
    Pod {
        /// The pod's Kubernetes namespace.
        namespace: String,
        /// The pod's name.
        name: String,
    },
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
        if let Some(id) = name.strip_prefix("container:") {
            if !(12..=64).contains(&id.len())
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(invalid(
                    "a container ID is 12 to 64 lowercase hexadecimal digits",
                ));
            }
            return Ok(Self::Container(id.to_owned()));
        }
        if let Some(pod) = name.strip_prefix("pod:") {
            let (namespace, pod_name) = pod
                .split_once('/')
                .ok_or_else(|| invalid("a pod is pod:NAMESPACE/NAME"))?;
            crate::cri::check_pod(namespace, pod_name).map_err(invalid)?;
            return Ok(Self::Pod {
                namespace: namespace.to_owned(),
                name: pod_name.to_owned(),
            });
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
            Self::Container(id) => PathBuf::from(format!("container:{id}")),
            Self::Pod { namespace, name } => PathBuf::from(format!("pod:{namespace}/{name}")),
        }
    }

    /// Opens the namespace: from here on the handle names it, whatever
    /// becomes of the name (a process that exits, a pid reused, a file
    /// replaced). A container is found by a scan of `/proc` (blocking).
    pub fn open(&self) -> Result<NetnsHandle, NetnsError> {
        let path = match self {
            Self::Container(id) => return self.open_container(id),
            Self::Pod { namespace, name } => {
                crate::cri::pod_netns(namespace, name).map_err(|reason| NetnsError::Pod {
                    pod: format!("{namespace}/{name}"),
                    reason,
                })?
            }
            _ => self.path(),
        };
        let file = File::open(&path).map_err(|source| NetnsError::Open {
            path: path.clone(),
            source,
        })?;
        self.handle(file, &path)
    }

    /// The handle of `file`, this namespace's nsfs file opened at `path`.
    fn handle(&self, file: File, path: &Path) -> Result<NetnsHandle, NetnsError> {
        let meta = file.metadata().map_err(|source| NetnsError::Open {
            path: path.to_owned(),
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
            Self::File(_) | Self::Container(_) | Self::Pod { .. } => self.open()?.run(work),
        }
    }

    /// The network namespace of the container whose ID starts with
    /// `prefix`: that of its lowest pid. The pid's cgroups are read again
    /// once its namespace is open, so that a pid reused meanwhile is
    /// never taken for the container's.
    fn open_container(&self, prefix: &str) -> Result<NetnsHandle, NetnsError> {
        let failed = |reason: String| NetnsError::Container {
            id: prefix.to_owned(),
            reason,
        };
        let (pid, id) = find_container(prefix).map_err(failed)?;
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let file = File::open(&path).map_err(|source| NetnsError::Open {
            path: path.clone(),
            source,
        })?;
        if !container_ids(pid).contains(&id) {
            return Err(failed(format!("its process {pid} went away")));
        }
        self.handle(file, &path)
    }
}

/// Most processes a container lookup reads the cgroups of.
const MAX_SCANNED: usize = 1 << 16;

/// The lowest pid in a container whose 64-digit ID starts with `prefix`,
/// and that ID; an error when none or more than one container matches.
fn find_container(prefix: &str) -> Result<(u32, String), String> {
    let entries = std::fs::read_dir("/proc").map_err(|err| format!("reading /proc: {err}"))?;
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .take(MAX_SCANNED)
        .collect();
    pids.sort_unstable();
    let mut found: Option<(u32, String)> = None;
    for pid in pids {
        for id in container_ids(pid) {
            if !id.starts_with(prefix) {
                continue;
            }
            match &found {
                None => found = Some((pid, id)),
                Some((_, seen)) if *seen == id => {}
                Some((_, seen)) => {
                    return Err(format!(
                        "matches containers {seen} and {id}: give more digits"
                    ));
                }
            }
        }
    }
    found.ok_or_else(|| "no running process is in such a container".to_owned())
}

/// The container IDs (64 lowercase hex digits: Docker, containerd, CRI-O,
/// Podman) that name a cgroup of process `pid`: `/docker/ID`,
/// `docker-ID.scope`, `cri-containerd-ID.scope`, `crio-ID.scope`,
/// `libpod-ID.scope`. None for a process that is gone.
fn container_ids(pid: u32) -> Vec<String> {
    let Ok(cgroups) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for line in cgroups.lines() {
        // hierarchy-ID:controllers:path
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        for segment in path.split('/') {
            let stem = segment.strip_suffix(".scope").unwrap_or(segment);
            let id = stem.rsplit('-').next().unwrap_or(stem);
            if id.len() == 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && !ids.iter().any(|seen| seen == id)
            {
                ids.push(id.to_owned());
            }
        }
    }
    ids
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
            Self::Container(id) => write!(f, "container:{id}"),
            Self::Pod { namespace, name } => write!(f, "pod:{namespace}/{name}"),
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
            "container:abc",
            "container:0123456789AB",
            "container:0123456789ab/../x",
            &format!("container:{}", "a".repeat(65)),
            "pod:",
            "pod:default",
            "pod:default/",
            "pod:/web",
            "pod:Default/web",
            "pod:default/web/x",
            "pod:default/../x",
            "pod:default/web x",
        ] {
            assert!(
                matches!(Netns::parse(hostile), Err(NetnsError::InvalidName { .. })),
                "{hostile:?} accepted"
            );
        }
        assert!(Netns::parse(&"x".repeat(256)).is_err());
        assert_eq!(
            Netns::parse("container:0123456789ab").unwrap(),
            Netns::Container("0123456789ab".to_owned())
        );
        let pod = Netns::parse("pod:kube-system/coredns-0").unwrap();
        assert_eq!(
            pod,
            Netns::Pod {
                namespace: "kube-system".to_owned(),
                name: "coredns-0".to_owned()
            }
        );
        assert_eq!(pod.to_string(), "pod:kube-system/coredns-0");
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
