//! The container image definition and the Kubernetes manifests, checked
//! offline: the manifests against the Kubernetes API's own schemas
//! (kubernetes-validate, which `cargo xtask bootstrap` installs), then the
//! fields that matter to pktd: the node's network and processes, the
//! threat model's capabilities and no others, the mounts it needs, a
//! policy pktd accepts, the metrics token as a file; the image built from
//! the Debian package and started as the package starts the daemon.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use pktd_daemon::{policy::Policy, privileges::KEPT};
use pktd_tests::process::bin_path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root().join("target"), |dir| root().join(dir))
}

/// The manifests' fields pktd depends on, read by the validator's own
/// Python (it has PyYAML), one `key<TAB>value` per line.
fn fields(manifest: &Path) -> Vec<(String, String)> {
    const READER: &str = r#"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    kind = d["kind"]
    print(f"kind\t{kind}")
    if kind == "ConfigMap":
        for key, value in d["data"].items():
            print(f"configmap:{key}\t{value!r}")
    if kind == "DaemonSet":
        spec = d["spec"]["template"]["spec"]
        print(f"hostNetwork\t{spec.get('hostNetwork')}")
        print(f"hostPID\t{spec.get('hostPID')}")
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            sc = c["securityContext"]
            print(f"privileged\t{sc.get('privileged')}")
            print(f"allowPrivilegeEscalation\t{sc.get('allowPrivilegeEscalation')}")
            for cap in sc["capabilities"].get("add", []):
                print(f"cap:add\t{cap}")
            for cap in sc["capabilities"].get("drop", []):
                print(f"cap:drop\t{cap}")
            for arg in c.get("args", []):
                print(f"arg\t{arg}")
            for m in c["volumeMounts"]:
                v = volumes[m["name"]]
                source = v.get("hostPath", {}).get("path") or \
                    (v.get("configMap") or {}).get("name") or \
                    (v.get("secret") or {}).get("secretName") or "emptyDir"
                print(f"mount\t{m['mountPath']}={source}:{m.get('subPath', '')}")
"#;
    let python = target_dir().join("tools/kubernetes-validate/bin/python3");
    let output = Command::new(&python)
        .args(["-c", READER])
        .arg(manifest)
        .output()
        .unwrap_or_else(|err| panic!("{}: {err} (cargo xtask bootstrap)", python.display()));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (key, value) = line.split_once('\t').unwrap();
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn the_kubernetes_manifests_validate_and_grant_what_pktd_needs() {
    let manifest = root().join("packaging/kubernetes/pktd.yaml");
    let validator = target_dir().join("tools/kubernetes-validate/bin/kubernetes-validate");
    let output = Command::new(&validator)
        .arg("--strict")
        .arg(&manifest)
        .output()
        .unwrap_or_else(|err| panic!("{}: {err} (cargo xtask bootstrap)", validator.display()));
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kubernetes-validate: {said}");
    for kind in [
        "configmap/pktd-policy",
        "daemonset/pktd",
        "service/pktd-metrics",
    ] {
        assert!(
            said.contains(&format!("passed for resource {kind}")),
            "{said}"
        );
    }

    let fields = fields(&manifest);
    let values = |key: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(values("hostNetwork"), ["True"]);
    assert_eq!(values("hostPID"), ["True"]);
    assert_eq!(values("privileged"), ["False"]);
    assert_eq!(values("allowPrivilegeEscalation"), ["False"]);
    assert_eq!(values("cap:drop"), ["ALL"]);
    // Exactly the capabilities the daemon keeps.
    let added: BTreeSet<String> = values("cap:add")
        .into_iter()
        .map(|cap| format!("CAP_{cap}"))
        .collect();
    let kept: BTreeSet<String> = KEPT.iter().map(ToString::to_string).collect();
    assert_eq!(added, kept);
    let mounts = values("mount");
    for expected in [
        "/sys/fs/bpf=/sys/fs/bpf:",
        "/run/netns=/run/netns:",
        "/run/pktd=/run/pktd:",
        "/var/lib/pktd=/var/lib/pktd:",
        "/etc/pktd=pktd-policy:",
        "/etc/pktd-metrics/token=pktd-metrics-token:token",
    ] {
        assert!(mounts.contains(&expected), "{expected} in {mounts:?}");
    }
    // The daemon's arguments are its own flags, and the policy is one it
    // accepts.
    let help = Command::new(bin_path("pktd"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let flags: BTreeSet<&str> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '<' || c == '[')
        .filter(|word| word.starts_with("--"))
        .collect();
    for arg in values("arg") {
        let flag = arg.split('=').next().unwrap();
        assert!(flags.contains(flag), "pktd has no {flag}: {flags:?}");
    }
    let policy = values("configmap:policy.toml");
    assert_eq!(policy.len(), 1);
    // Python's repr of the text: unescape the newlines.
    let text = policy[0]
        .trim_matches(|c| c == '\'' || c == '"')
        .replace("\\n", "\n")
        .replace("\\'", "'");
    Policy::parse(&text, "configmap").unwrap_or_else(|err| panic!("{err}\n{text}"));
}

#[test]
fn the_image_is_built_from_the_package_and_starts_the_daemon() {
    let dockerfile =
        std::fs::read_to_string(root().join("packaging/container/Dockerfile")).unwrap();
    let instructions: Vec<(&str, &str)> = dockerfile
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split_once(' '))
        .filter(|(word, _)| word.chars().all(|c| c.is_ascii_uppercase()))
        .collect();
    let stages: Vec<&str> = instructions
        .iter()
        .filter(|(word, _)| *word == "FROM")
        .map(|(_, rest)| *rest)
        .collect();
    assert_eq!(
        stages.len(),
        2,
        "a build stage and a runtime stage: {stages:?}"
    );
    assert_eq!(stages[1], "debian:12-slim", "a minimal runtime image");
    assert!(dockerfile.contains("cargo xtask package --out /out"));
    assert!(dockerfile.contains("apt-get install -y --no-install-recommends /tmp/pktd/pktd_*.deb"));
    let last = |word: &str| {
        instructions
            .iter()
            .rev()
            .find(|(w, _)| *w == word)
            .map(|(_, rest)| *rest)
            .unwrap_or_else(|| panic!("no {word}"))
    };
    assert_eq!(last("ENTRYPOINT"), r#"["/usr/sbin/pktd"]"#);
    // The command line is the one the package's service runs.
    let service = std::fs::read_to_string(root().join("packaging/systemd/pktd.service")).unwrap();
    let exec = service
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart=/usr/sbin/pktd "))
        .unwrap();
    let cmd: String = last("CMD")
        .trim_matches(|c| c == '[' || c == ']')
        .split(", ")
        .map(|arg| arg.trim_matches('"'))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(cmd, exec);
}
