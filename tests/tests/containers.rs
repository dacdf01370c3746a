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
