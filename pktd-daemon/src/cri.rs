//! Pods' network namespaces, through the container runtime's CRI socket
//! (the Kubernetes Container Runtime Interface, `runtime.v1`, which
//! containerd and CRI-O serve): `pod:NAMESPACE/NAME` is the network
//! namespace of the pod's ready sandbox.
//!
//! The runtime is part of the node's trusted base, as pktd is; what a
//! client sends is only the pod's namespace and name, checked against
//! Kubernetes' own rules for them before anything is asked. Every call has
//! a deadline: a runtime that does not answer delays that one request,
//! nothing else.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::Duration,
};

use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};

/// The CRI socket set with `--cri-socket`, if any.
static SOCKET: OnceLock<PathBuf> = OnceLock::new();

/// Where containerd and CRI-O listen, tried in turn when no socket is set.
pub const DEFAULT_SOCKETS: [&str; 2] = ["/run/containerd/containerd.sock", "/run/crio/crio.sock"];

/// How long one resolution may take, all calls together.
const DEADLINE: Duration = Duration::from_secs(2);

/// Uses `path` as the CRI socket (once, at start).
pub fn set_socket(path: PathBuf) {
    let _ = SOCKET.set(path);
}

/// The socket to ask: the one set, or the first default that exists.
fn socket() -> Result<PathBuf, String> {
    if let Some(path) = SOCKET.get() {
        return Ok(path.clone());
    }
    DEFAULT_SOCKETS
        .iter()
        .map(Path::new)
        .find(|path| path.exists())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            format!(
                "no container runtime's CRI socket here ({}); pktd --cri-socket names another",
                DEFAULT_SOCKETS.join(", ")
            )
        })
}

/// Checks a pod's namespace and name as Kubernetes does (RFC 1123: a
/// label of at most 63 for the namespace, a subdomain of at most 253 for
/// the name): the only client input that reaches the runtime.
pub fn check_pod(namespace: &str, name: &str) -> Result<(), &'static str> {
    let label = |part: &str| {
        !part.is_empty()
            && part.len() <= 63
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !part.starts_with('-')
            && !part.ends_with('-')
    };
    if !label(namespace) {
        return Err("a pod's namespace is 1 to 63 of a-z 0-9 -, starting and ending alphanumeric");
    }
    if name.len() > 253 || !name.split('.').all(label) {
        return Err(
            "a pod's name is at most 253 of a-z 0-9 - ., in dot-separated parts starting and \
             ending alphanumeric",
        );
    }
    Ok(())
}

/// The network namespace file of pod `namespace/name`'s ready sandbox
/// (the runtime's bind mount of it, or its process's), or why there is
/// none. Blocking: up to [`DEADLINE`].
pub fn pod_netns(namespace: &str, name: &str) -> Result<PathBuf, String> {
    check_pod(namespace, name).map_err(str::to_owned)?;
    let socket = socket()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("starting a runtime for the CRI call: {err}"))?;
    runtime.block_on(async {
        tokio::time::timeout(DEADLINE, resolve(&socket, namespace, name))
            .await
            .map_err(|_| {
                format!(
                    "the container runtime at {} did not answer within {} s",
                    socket.display(),
                    DEADLINE.as_secs()
                )
            })?
    })
}

async fn resolve(socket: &Path, namespace: &str, name: &str) -> Result<PathBuf, String> {
    let mut client = Client::connect(socket).await?;
    let filter = PodSandboxFilter {
        id: String::new(),
        state: Some(PodSandboxStateValue {
            state: SANDBOX_READY,
        }),
        label_selector: HashMap::from([
            (LABEL_NAMESPACE.to_owned(), namespace.to_owned()),
            (LABEL_NAME.to_owned(), name.to_owned()),
        ]),
    };
    let list: ListPodSandboxResponse = client
        .call(
            "ListPodSandbox",
            ListPodSandboxRequest {
                filter: Some(filter),
            },
        )
        .await?;
    // The labels are the kubelet's; the metadata is the pod's own.
    let sandbox = list
        .items
        .into_iter()
        .filter(|item| {
            item.state == SANDBOX_READY
                && item
                    .metadata
                    .as_ref()
                    .is_some_and(|meta| meta.namespace == namespace && meta.name == name)
        })
        .max_by_key(|item| item.created_at)
        .ok_or_else(|| format!("no ready pod {namespace}/{name}"))?;
    let status: PodSandboxStatusResponse = client
        .call(
            "PodSandboxStatus",
            PodSandboxStatusRequest {
                pod_sandbox_id: sandbox.id.clone(),
                verbose: true,
            },
        )
        .await?;
    let network = status
        .status
        .and_then(|status| status.linux)
        .and_then(|linux| linux.namespaces)
        .and_then(|namespaces| namespaces.options)
        .map_or(NAMESPACE_POD, |options| options.network);
    if network == NAMESPACE_NODE {
        return Err(format!(
            "pod {namespace}/{name} uses the node's network namespace (hostNetwork)"
        ));
    }
    let info = status
        .info
        .get("info")
        .ok_or_else(|| format!("the runtime told nothing of pod {namespace}/{name}'s sandbox"))?;
    netns_in_info(info)
        .ok_or_else(|| format!("the runtime named no network namespace for pod {namespace}/{name}"))
}

/// The network namespace in a sandbox's verbose information (JSON): the
/// path in its OCI runtime spec (containerd, CRI-O), if it is a namespace
/// mount or a process's, else its process's (`pid`).
pub fn netns_in_info(info: &str) -> Option<PathBuf> {
    let info: serde_json::Value = serde_json::from_str(info).ok()?;
    let from_spec = info
        .pointer("/runtimeSpec/linux/namespaces")
        .and_then(serde_json::Value::as_array)
        .and_then(|namespaces| {
            namespaces
                .iter()
                .find(|ns| ns.get("type").and_then(|t| t.as_str()) == Some("network"))
        })
        .and_then(|ns| ns.get("path")?.as_str())
        .filter(|path| is_namespace_path(path))
        .map(PathBuf::from);
    from_spec.or_else(|| {
        let pid = info.get("pid")?.as_u64().filter(|pid| *pid > 0)?;
        Some(PathBuf::from(format!("/proc/{pid}/ns/net")))
    })
}

/// A namespace mount of `ip netns` or a runtime (`/run/netns/NAME`,
/// `/var/run/netns/NAME`) or a process's (`/proc/PID/ns/net`): nothing
/// else is opened, whatever the runtime says.
fn is_namespace_path(path: &str) -> bool {
    let file_name = |rest: &str| {
        !rest.is_empty()
            && rest != "."
            && rest != ".."
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if let Some(rest) = path
        .strip_prefix("/run/netns/")
        .or_else(|| path.strip_prefix("/var/run/netns/"))
    {
        return file_name(rest);
    }
    path.strip_prefix("/proc/")
        .and_then(|rest| rest.strip_suffix("/ns/net"))
        .is_some_and(|pid| {
            !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit())
        })
}

/// A gRPC client of the runtime service on a Unix socket.
pub struct Client {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
}

impl Client {
    /// Connects to the CRI socket at `socket`.
    pub async fn connect(socket: &Path) -> Result<Self, String> {
        let path = socket.to_path_buf();
        // The URI is a placeholder: the connector dials the socket.
        let channel = Endpoint::from_static("http://cri.invalid")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(TokioIo::new)
                }
            }))
            .await
            .map_err(|err| {
                format!(
                    "connecting to {}: {}",
                    socket.display(),
                    crate::errors::chain(&err)
                )
            })?;
        Ok(Self {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    /// Calls method `method` of `runtime.v1.RuntimeService`.
    pub async fn call<Q, A>(&mut self, method: &str, request: Q) -> Result<A, String>
    where
        Q: prost::Message + Send + Sync + 'static,
        A: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|err| format!("the CRI socket: {}", crate::errors::chain(&err)))?;
        let path = format!("/runtime.v1.RuntimeService/{method}")
            .parse()
            .map_err(|_| format!("a CRI method name: {method}"))?;
        let codec = tonic_prost::ProstCodec::<Q, A>::default();
        self.grpc
            .unary(tonic::Request::new(request), path, codec)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| format!("the runtime refused {method}: {}", status.message()))
    }
}

/// The kubelet's labels of a pod's sandbox.
const LABEL_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const LABEL_NAME: &str = "io.kubernetes.pod.name";

// The messages of `runtime.v1` (k8s.io/cri-api, api.proto) pktd uses, with
// their field numbers; the tests use a few more to make pods.

/// `PodSandboxState.SANDBOX_READY`.
pub const SANDBOX_READY: i32 = 0;
/// `NamespaceMode.POD`.
pub const NAMESPACE_POD: i32 = 0;
/// `NamespaceMode.NODE`.
pub const NAMESPACE_NODE: i32 = 2;

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uid: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStateValue {
    #[prost(int32, tag = "1")]
    pub state: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxFilter {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub state: Option<PodSandboxStateValue>,
    #[prost(map = "string, string", tag = "3")]
    pub label_selector: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    pub filter: Option<PodSandboxFilter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandbox {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(int32, tag = "3")]
    pub state: i32,
    #[prost(int64, tag = "4")]
    pub created_at: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodSandboxResponse {
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<PodSandbox>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatusRequest {
    #[prost(string, tag = "1")]
    pub pod_sandbox_id: String,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceOption {
    #[prost(int32, tag = "1")]
    pub network: i32,
    #[prost(int32, tag = "2")]
    pub pid: i32,
    #[prost(int32, tag = "3")]
    pub ipc: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Namespace {
    #[prost(message, optional, tag = "2")]
    pub options: Option<NamespaceOption>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LinuxPodSandboxStatus {
    #[prost(message, optional, tag = "1")]
    pub namespaces: Option<Namespace>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxNetworkStatus {
    #[prost(string, tag = "1")]
    pub ip: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(int32, tag = "3")]
    pub state: i32,
    #[prost(message, optional, tag = "5")]
    pub network: Option<PodSandboxNetworkStatus>,
    #[prost(message, optional, tag = "6")]
    pub linux: Option<LinuxPodSandboxStatus>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub status: Option<PodSandboxStatus>,
    #[prost(map = "string, string", tag = "2")]
    pub info: HashMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_named_as_kubernetes_names_them() {
        assert!(check_pod("default", "web-0").is_ok());
        assert!(check_pod("kube-system", "coredns-5d78c9869d-x2v4k.a").is_ok());
        for (namespace, name) in [
            ("", "a"),
            ("Default", "a"),
            ("-a", "a"),
            ("a", ""),
            ("a", "a..b"),
            ("a", "a/b"),
            ("a", "../x"),
            ("a", "x\u{0}"),
            ("a", &"x".repeat(254)),
            (&"a".repeat(64), "x"),
        ] {
            assert!(
                check_pod(namespace, name).is_err(),
                "{namespace:?}/{name:?}"
            );
        }
    }

    #[test]
    fn the_namespace_comes_from_the_spec_or_the_process() {
        let containerd = r#"{"pid":4242,"runtimeSpec":{"linux":{"namespaces":[
            {"type":"pid"},{"type":"network","path":"/var/run/netns/cni-0a1b"}]}}}"#;
        assert_eq!(
            netns_in_info(containerd),
            Some(PathBuf::from("/var/run/netns/cni-0a1b"))
        );
        let elsewhere = r#"{"pid":4242,"runtimeSpec":{"linux":{"namespaces":[
            {"type":"network","path":"/etc/shadow"}]}}}"#;
        assert_eq!(
            netns_in_info(elsewhere),
            Some(PathBuf::from("/proc/4242/ns/net")),
            "a path that is no namespace mount is not opened"
        );
        for escape in [
            "/run/netns/../../etc/shadow",
            "/proc/1/../self/ns/net",
            "/run/netns/",
        ] {
            assert!(!is_namespace_path(escape), "{escape}");
        }
        assert_eq!(netns_in_info(r#"{"pid":0}"#), None);
        assert_eq!(netns_in_info("not json"), None);
    }
}
