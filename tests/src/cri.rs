//! A real container runtime for tests: containerd (Debian's, with its CRI
//! plugin) started with a root, state, socket and CNI network of its own,
//! and pods run through its CRI socket as the kubelet runs them (a
//! sandbox with the kubelet's labels, networked by the CNI bridge plugin).
//! The sandbox image is built here: a static `pause` in a one-layer
//! image, imported with `ctr` (the machine has no registry to pull from).
//! Everything is removed on drop: pods, containerd and its shims, mounts,
//! the bridge.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use pktd_daemon::cri::{
    Client, NAMESPACE_POD, PodSandboxMetadata, PodSandboxStatusRequest, PodSandboxStatusResponse,
};

/// The image the sandboxes run.
const PAUSE_IMAGE: &str = "pktd.test/pause:1";

/// containerd with its own everything.
pub struct Containerd {
    dir: PathBuf,
    /// Its CRI (and containerd) socket.
    pub socket: PathBuf,
    process: Child,
    bridge: String,
    /// The bridge's subnet, `A.B.C.0/24`: pods get addresses in it, the
    /// bridge `.1`.
    pub gateway: String,
    sandboxes: Vec<String>,
}

/// A pod sandbox it runs.
pub struct Pod {
    /// The sandbox's ID.
    pub id: String,
    /// Its address.
    pub ip: String,
}

impl Containerd {
    /// Starts containerd and imports the sandbox image. Panics on what
    /// fails: the test cannot go on without it.
    pub fn start() -> Self {
        let pid = std::process::id();
        let dir = PathBuf::from(format!("/tmp/pktd-cri-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["root", "state", "net.d", "image/rootfs", "logs", "ipam"] {
            std::fs::create_dir_all(dir.join(sub)).expect("containerd's directories");
        }
        let socket = dir.join("containerd.sock");
        let bridge = format!("pktdcri{}", pid % 100_000);
        let subnet = format!("10.{}.{}", 200 + pid % 50, (pid / 50) % 250);
        let gateway = format!("{subnet}.1");
        std::fs::write(
            dir.join("config.toml"),
            format!(
                r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Sandboxes ask for oom_score_adj -998, which needs CAP_SYS_RESOURCE:
  # some machines (this one) do not give root that.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{netd}"
"#,
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                socket = socket.display(),
                netd = dir.join("net.d").display(),
            ),
        )
        .expect("containerd's configuration");
        std::fs::write(
            dir.join("net.d/10-pktd.conflist"),
            format!(
                r#"{{"cniVersion": "0.4.0", "name": "pktd-test", "plugins": [{{
  "type": "bridge", "bridge": "{bridge}", "isGateway": true, "ipMasq": false,
  "ipam": {{"type": "host-local", "subnet": "{subnet}.0/24", "dataDir": "{ipam}"}}
}}]}}"#,
                ipam = dir.join("ipam").display(),
            ),
        )
        .expect("the CNI network");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("containerd's log");
        let process = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting containerd (Debian's containerd package)");
        let runtime = Self {
            dir,
            socket,
            process,
            bridge,
            gateway,
            sandboxes: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !runtime.socket.exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                runtime.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        runtime.import_pause();
        runtime
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// Builds the sandbox image (a static `pause`, one layer, in the
    /// format `docker save` writes) and imports it.
    fn import_pause(&self) {
        let image = self.dir.join("image");
        std::fs::write(
            image.join("pause.c"),
            "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n",
        )
        .unwrap();
        run(Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(image.join("rootfs/pause"))
            .arg(image.join("pause.c")));
        run(Command::new("tar")
            .arg("-C")
            .arg(image.join("rootfs"))
            .arg("-cf")
            .arg(image.join("layer.tar"))
            .arg("pause"));
        let digest = output(Command::new("sha256sum").arg(image.join("layer.tar")));
        let digest = digest.split_whitespace().next().expect("a digest");
        std::fs::write(
            image.join("config.json"),
            format!(
                r#"{{"architecture":"amd64","os":"linux","config":{{"Entrypoint":["/pause"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{digest}"]}}}}"#
            ),
        )
        .unwrap();
        std::fs::write(
            image.join("manifest.json"),
            format!(
                r#"[{{"Config":"config.json","RepoTags":["{PAUSE_IMAGE}"],"Layers":["layer.tar"]}}]"#
            ),
        )
        .unwrap();
        run(Command::new("tar")
            .arg("-C")
            .arg(&image)
            .arg("-cf")
            .arg(image.join("image.tar"))
            .args(["config.json", "manifest.json", "layer.tar"]));
        run(Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["-n", "k8s.io", "images", "import"])
            .arg(image.join("image.tar")));
    }

    /// Runs a pod sandbox named `namespace/name` as the kubelet would
    /// (its labels included), networked by the bridge.
    pub async fn run_pod(&mut self, namespace: &str, name: &str) -> Pod {
        let mut client = Client::connect(&self.socket).await.expect("the CRI socket");
        let uid = format!(
            "{:08x}-0000-0000-0000-{:012x}",
            std::process::id(),
            self.sandboxes.len()
        );
        let labels = HashMap::from([
            (
                "io.kubernetes.pod.namespace".to_owned(),
                namespace.to_owned(),
            ),
            ("io.kubernetes.pod.name".to_owned(), name.to_owned()),
            ("io.kubernetes.pod.uid".to_owned(), uid.clone()),
        ]);
        let metadata = PodSandboxMetadata {
            name: name.to_owned(),
            uid,
            namespace: namespace.to_owned(),
            attempt: 0,
        };
        let config = PodSandboxConfig {
            metadata: Some(metadata),
            hostname: name.to_owned(),
            log_directory: self.dir.join("logs").display().to_string(),
            labels,
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: String::new(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(pktd_daemon::cri::NamespaceOption {
                        network: NAMESPACE_POD,
                        pid: 1, // CONTAINER
                        ipc: NAMESPACE_POD,
                    }),
                }),
            }),
        };
        let started: RunPodSandboxResponse = client
            .call(
                "RunPodSandbox",
                RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: String::new(),
                },
            )
            .await
            .unwrap_or_else(|err| panic!("running pod {namespace}/{name}: {err}\n{}", self.log()));
        self.sandboxes.push(started.pod_sandbox_id.clone());
        let status: PodSandboxStatusResponse = client
            .call(
                "PodSandboxStatus",
                PodSandboxStatusRequest {
                    pod_sandbox_id: started.pod_sandbox_id.clone(),
                    verbose: false,
                },
            )
            .await
            .expect("the pod's status");
        let ip = status
            .status
            .and_then(|status| status.network)
            .map(|network| network.ip)
            .expect("the pod's address");
        Pod {
            id: started.pod_sandbox_id,
            ip,
        }
    }

    /// Stops and removes pod sandbox `id`.
    pub async fn remove_pod(&mut self, id: &str) {
        let mut client = Client::connect(&self.socket).await.expect("the CRI socket");
        let request = || StopPodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        };
        let _: Empty = client
            .call("StopPodSandbox", request())
            .await
            .expect("stopping the pod");
        let _: Empty = client
            .call("RemovePodSandbox", request())
            .await
            .expect("removing the pod");
        self.sandboxes.retain(|sandbox| sandbox != id);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let sandboxes = std::mem::take(&mut self.sandboxes);
        if !sandboxes.is_empty() {
            let socket = self.socket.clone();
            // A runtime of its own: drop may run inside a test's runtime.
            let _ = std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async {
                    let Ok(mut client) = Client::connect(&socket).await else {
                        return;
                    };
                    for id in sandboxes {
                        let request = || StopPodSandboxRequest {
                            pod_sandbox_id: id.clone(),
                        };
                        let _: Result<Empty, _> = client.call("StopPodSandbox", request()).await;
                        let _: Result<Empty, _> = client.call("RemovePodSandbox", request()).await;
                    }
                });
            })
            .join();
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
        // Shims outlive containerd: theirs name its state directory.
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(self.dir.display().to_string())
            .status();
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(self.dir.join("root"))
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
                self.dir.display()
            ))
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?}: {err}"));
    assert!(
        out.status.success(),
        "{command:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn output(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?}: {err}"));
    assert!(out.status.success(), "{command:?}: {}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the machine has what these tests need (the bootstrap installs
/// it): a missing package fails the test rather than skipping it.
pub fn check_installed() {
    for tool in ["containerd", "ctr", "runc", "gcc"] {
        assert!(
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {tool}"))
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success()),
            "{tool} is missing: run `cargo xtask bootstrap`"
        );
    }
    assert!(
        Path::new("/usr/lib/cni/bridge").exists(),
        "the CNI plugins are missing: run `cargo xtask bootstrap`"
    );
}

// The messages of runtime.v1 the tests use to make pods, beside those
// pktd's own CRI client has.

#[derive(Clone, PartialEq, prost::Message)]
struct LinuxSandboxSecurityContext {
    #[prost(message, optional, tag = "1")]
    namespace_options: Option<pktd_daemon::cri::NamespaceOption>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct LinuxPodSandboxConfig {
    #[prost(string, tag = "1")]
    cgroup_parent: String,
    #[prost(message, optional, tag = "2")]
    security_context: Option<LinuxSandboxSecurityContext>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PodSandboxConfig {
    #[prost(message, optional, tag = "1")]
    metadata: Option<PodSandboxMetadata>,
    #[prost(string, tag = "2")]
    hostname: String,
    #[prost(string, tag = "3")]
    log_directory: String,
    #[prost(map = "string, string", tag = "6")]
    labels: HashMap<String, String>,
    #[prost(message, optional, tag = "8")]
    linux: Option<LinuxPodSandboxConfig>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RunPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    config: Option<PodSandboxConfig>,
    #[prost(string, tag = "2")]
    runtime_handler: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RunPodSandboxResponse {
    #[prost(string, tag = "1")]
    pod_sandbox_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StopPodSandboxRequest {
    #[prost(string, tag = "1")]
    pod_sandbox_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}
