//! Naming network namespaces on container hosts: `container:ID` finds a
//! container's namespace through the cgroups its processes are in (as
//! Docker, containerd, CRI-O and Podman name them), and a policy names
//! namespaces by pattern (`"container:*"`, `"lab-*"`).
//!
//! The "container" here is what a runtime makes of one, minus the image: a
//! process in a network namespace of its own (the lab's) and in a cgroup
//! named `docker-ID.scope`.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use libwire::{CaptureBuilder, Direction};
use pktd_daemon::policy::Policy;
use pktd_tests::{corpus::numbered_udp_frame, daemon::open_as, netlab::Lab, pktd::RealDaemon};
use tokio::time::timeout;

const ANY_CONTAINER_UID: u32 = 4551;
const OTHER_CONTAINERS_UID: u32 = 4552;

/// A process in the lab's capture namespace and in a cgroup named as
/// Docker names a container's; killed and removed on drop.
struct FakeContainer {
    id: String,
    process: Child,
    cgroup: PathBuf,
    parent: PathBuf,
}

impl FakeContainer {
    fn start(lab: &Lab) -> Self {
        // 64 hex digits, unique per test process.
        let id = format!("{:016x}", u64::from(std::process::id()) * 0x9e37_79b9).repeat(4);
        // The pids hierarchy under cgroup v1 (this machine's), else the
        // unified one.
        let hierarchy = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
            .into_iter()
            .find(|path| std::path::Path::new(path).join("cgroup.procs").exists())
            .expect("a cgroup hierarchy");
        let parent = PathBuf::from(format!("{hierarchy}/pktd-test-{}", std::process::id()));
        let cgroup = parent.join(format!("docker-{id}.scope"));
        std::fs::create_dir_all(&cgroup).expect("a cgroup for the container");
        let process = Command::new("ip")
            .args(["netns", "exec", &lab.capture_ns, "sleep", "120"])
            .stdout(Stdio::null())
            .spawn()
            .expect("a process in the lab's namespace");
        std::fs::write(cgroup.join("cgroup.procs"), process.id().to_string())
            .expect("moving it into the container's cgroup");
        Self {
            id,
            process,
            cgroup,
            parent,
        }
    }
}

impl Drop for FakeContainer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir(&self.cgroup);
        let _ = std::fs::remove_dir(&self.parent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_is_named_by_its_id_and_policies_name_namespaces_by_pattern() {
    let lab = Lab::new();
    let container = FakeContainer::start(&lab);
    // ip netns exec has exec'd sleep once the process is in the namespace.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lab_prefix: String = lab.capture_ns.chars().take(12).collect();
    // The real daemon, with the capabilities it keeps: opening another
    // process's namespace takes ptrace read access (CAP_SYS_PTRACE, kept).
    let policy_text = format!(
        r#"
[[principal]]
name = "any-container"
users = [{ANY_CONTAINER_UID}]
netns = ["container:*"]
interfaces = ["*"]
directions = ["in"]

[[principal]]
name = "other-containers"
users = [{OTHER_CONTAINERS_UID}]
netns = ["container:ffff*", "{lab_prefix}*"]
interfaces = ["*"]
directions = ["in"]
"#
    );
    let daemon = RealDaemon::start("containers", &policy_text, &[]);
    let short = &container.id[..12];
    let by_id = |id: &str| {
        CaptureBuilder::new(&lab.capture_if)
            .socket(&daemon.socket)
            .netns(format!("container:{id}"))
            .direction(Direction::In)
            .filter("udp dst port 9100")
    };

    // The container's namespace by its short ID: the lab's capture side.
    let mut capture = open_as(
        by_id(short),
        &daemon.socket,
        ANY_CONTAINER_UID,
        ANY_CONTAINER_UID,
    )
    .await
    .expect("the container's namespace");
    let sender = lab.sender();
    for sequence in 0..5 {
        sender.send(&numbered_udp_frame(9100, sequence, 20));
    }
    for _ in 0..5 {
        timeout(Duration::from_secs(5), capture.next_packet())
            .await
            .expect("a packet in time")
            .expect("reading")
            .expect("a packet");
    }

    // Unknown and malformed IDs are refused with the reason.
    let unknown = open_as(
        by_id("000000000000"),
        &daemon.socket,
        ANY_CONTAINER_UID,
        ANY_CONTAINER_UID,
    )
    .await
    .err()
    .expect("no such container");
    assert!(
        unknown
            .to_string()
            .contains("no running process is in such a container"),
        "{unknown}"
    );
    let malformed = open_as(
        by_id("XYZ"),
        &daemon.socket,
        ANY_CONTAINER_UID,
        ANY_CONTAINER_UID,
    )
    .await
    .err()
    .expect("not an ID");
    assert!(malformed.to_string().contains("hexadecimal"), "{malformed}");

    // A principal whose pattern names other containers may not; the same
    // principal reaches the lab by an ip-netns pattern.
    let refused = open_as(
        by_id(short),
        &daemon.socket,
        OTHER_CONTAINERS_UID,
        OTHER_CONTAINERS_UID,
    )
    .await
    .err()
    .expect("not its container");
    assert!(
        refused
            .to_string()
            .contains("may not capture in network namespace"),
        "{refused}"
    );
    let by_pattern = CaptureBuilder::new(&lab.capture_if)
        .socket(&daemon.socket)
        .netns(&lab.capture_ns)
        .direction(Direction::In);
    open_as(
        by_pattern,
        &daemon.socket,
        OTHER_CONTAINERS_UID,
        OTHER_CONTAINERS_UID,
    )
    .await
    .expect("the lab's namespace by pattern");
    // Patterns that are not names are refused when the policy is read.
    for bad in ["container:xyz*", "/proc/*", "a/b*"] {
        let text = format!(
            "[[principal]]\nname = \"x\"\nusers = [1]\nnetns = [\"{bad}\"]\ninterfaces = [\"*\"]\n"
        );
        let error = Policy::parse(&text, "bad.toml").expect_err(bad).to_string();
        assert!(error.contains("netns"), "{bad}: {error}");
    }
}

const POD_UID: u32 = 4553;
const OTHER_PODS_UID: u32 = 4554;

/// A Kubernetes pod, named `pod:NAMESPACE/NAME`, is found through the
/// container runtime's CRI socket: here a real containerd running two pod
/// sandboxes as the kubelet runs them, on a CNI bridge. A session in one
/// pod's namespace sees the traffic sent to that pod; policies name pods
/// by pattern; unknown, malformed and unpermitted pods are refused with
/// the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_is_named_through_the_container_runtime() {
    pktd_tests::cri::check_installed();
    let mut runtime = tokio::task::spawn_blocking(pktd_tests::cri::Containerd::start)
        .await
        .unwrap();
    let web = runtime.run_pod("pktd-test", "web").await;
    let db = runtime.run_pod("pktd-other", "db").await;
    let policy_text = format!(
        r#"
[[principal]]
name = "pods"
users = [{POD_UID}]
netns = ["pod:pktd-test/*"]
interfaces = ["eth0"]
directions = ["in"]

[[principal]]
name = "other-pods"
users = [{OTHER_PODS_UID}]
netns = ["pod:pktd-other/*"]
interfaces = ["eth0"]
directions = ["in"]
"#
    );
    let socket = runtime.socket.display().to_string();
    let daemon = RealDaemon::start("pods", &policy_text, &["--cri-socket", &socket]);
    let in_pod = |pod: &str| {
        CaptureBuilder::new("eth0")
            .socket(&daemon.socket)
            .netns(format!("pod:{pod}"))
            .direction(Direction::In)
            .filter("udp dst port 9200")
    };

    let mut capture = open_as(in_pod("pktd-test/web"), &daemon.socket, POD_UID, POD_UID)
        .await
        .unwrap_or_else(|err| panic!("the pod's namespace: {err}\n{}", runtime.log()));
    // Datagrams from the node to each pod: the session sees web's only.
    let sender = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    for ip in [&db.ip, &web.ip, &db.ip] {
        for _ in 0..3 {
            sender.send_to(b"pktd", (ip.as_str(), 9200)).unwrap();
        }
    }
    let web_ip: std::net::Ipv4Addr = web.ip.parse().unwrap();
    for _ in 0..3 {
        let packet = timeout(Duration::from_secs(5), capture.next_packet())
            .await
            .expect("a packet in time")
            .expect("reading")
            .expect("a packet");
        assert_eq!(
            packet.data[30..34],
            web_ip.octets(),
            "a datagram for another pod"
        );
    }
    assert!(
        timeout(Duration::from_millis(300), capture.next_packet())
            .await
            .is_err(),
        "more than the pod's own datagrams"
    );

    let refusal = |pod: &'static str, uid: u32| {
        let builder = in_pod(pod);
        let socket = daemon.socket.clone();
        async move {
            open_as(builder, &socket, uid, uid)
                .await
                .err()
                .unwrap_or_else(|| panic!("{pod} opened"))
                .to_string()
        }
    };
    let other = refusal("pktd-test/web", OTHER_PODS_UID).await;
    assert!(
        other.contains("may not capture in network namespace"),
        "{other}"
    );
    let own = open_as(
        in_pod("pktd-other/db"),
        &daemon.socket,
        OTHER_PODS_UID,
        OTHER_PODS_UID,
    )
    .await
    .expect("its own pattern's pod");
    drop(own);
    let unknown = refusal("pktd-test/nope", POD_UID).await;
    assert!(unknown.contains("no ready pod pktd-test/nope"), "{unknown}");
    let malformed = refusal("pktd-test/Web", POD_UID).await;
    assert!(malformed.contains("pod's name"), "{malformed}");

    // A pod that went away is not found again.
    drop(capture);
    runtime.remove_pod(&web.id).await;
    let gone = refusal("pktd-test/web", POD_UID).await;
    assert!(gone.contains("no ready pod"), "{gone}");

    for (pattern, valid) in [
        ("pod:*", true),
        ("pod:kube-system/*", true),
        ("pod:default/web-*", true),
        ("pod:Default/*", false),
        ("pod:a/b/*", false),
    ] {
        let text = format!(
            "[[principal]]\nname = \"x\"\nusers = [1]\nnetns = [\"{pattern}\"]\ninterfaces = [\"*\"]\n"
        );
        assert_eq!(Policy::parse(&text, "p.toml").is_ok(), valid, "{pattern}");
    }
}
