//! The Debian package `cargo xtask package` builds: its control fields and
//! contents, an installation into a throw-away root (dpkg's own) whose
//! daemon, pktcap, library, man pages and completions work from there, the
//! maintainer scripts run against stubs that record what they would do,
//! and lintian.
//!
//! The package is built from the tree's debug binaries (`--profile dev
//! --no-build`: `cargo xtask test` has built them) and left uncompressed,
//! to keep the test quick; lintian's two tags about compression are the
//! only ones the test sets aside.

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use pktd_tests::{
    pktd::Scratch,
    process::{Running, bin_path},
};

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("running {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Builds the package into `dir`; its path.
fn build_package(dir: &Path) -> PathBuf {
    run(Command::new(bin_path("xtask"))
        .args([
            "package",
            "--profile",
            "dev",
            "--no-build",
            "--uncompressed",
            "--out",
        ])
        .arg(dir));
    let debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs.into_iter().next().unwrap()
}

/// `dpkg-deb --contents`: path → (mode string, owner, link target).
fn contents(deb: &Path) -> BTreeMap<String, (String, String, Option<String>)> {
    let listing = text(&run(Command::new("dpkg-deb").arg("--contents").arg(deb)));
    listing
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields[5].trim_start_matches('.').to_owned();
            let target = fields.get(7).map(|target| (*target).to_owned());
            (path, (fields[0].to_owned(), fields[1].to_owned(), target))
        })
        .collect()
}

#[test]
fn the_debian_package_installs_works_and_passes_lintian() {
    let scratch = Scratch::new("package");
    let deb = build_package(&scratch.0);
    let multiarch = text(&run(
        Command::new("dpkg-architecture").arg("-qDEB_HOST_MULTIARCH")
    ))
    .trim()
    .to_owned();

    // Control fields.
    let field = |name: &str| {
        text(&run(Command::new("dpkg-deb")
            .arg("--field")
            .arg(&deb)
            .arg(name)))
        .trim()
        .to_owned()
    };
    assert_eq!(field("Package"), "pktd");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    let depends = field("Depends");
    for needed in ["libc6", "libpcap0.8", "adduser", "init-system-helpers"] {
        assert!(depends.contains(needed), "Depends: {depends}");
    }

    // Contents, with their modes and owners.
    let files = contents(&deb);
    let lib = format!("/usr/lib/{multiarch}");
    let version = env!("CARGO_PKG_VERSION");
    let expected: Vec<(String, &str)> = vec![
        ("/usr/sbin/pktd".into(), "-rwxr-xr-x"),
        ("/usr/bin/pktcap".into(), "-rwxr-xr-x"),
        (format!("{lib}/libwire.so.{version}"), "-rw-r--r--"),
        (format!("{lib}/libwire.so.0"), "lrwxrwxrwx"),
        (format!("{lib}/libwire.so"), "lrwxrwxrwx"),
        (format!("{lib}/pkgconfig/libwire.pc"), "-rw-r--r--"),
        ("/usr/include/wire.h".into(), "-rw-r--r--"),
        (format!("{lib}/wireshark/extcap/pktd-extcap"), "-rwxr-xr-x"),
        ("/lib/systemd/system/pktd.service".into(), "-rw-r--r--"),
        ("/lib/systemd/system/pktd.socket".into(), "-rw-r--r--"),
        ("/etc/pktd/policy.toml".into(), "-rw-------"),
        ("/usr/share/man/man8/pktd.8.gz".into(), "-rw-r--r--"),
        ("/usr/share/man/man1/pktcap.1.gz".into(), "-rw-r--r--"),
        ("/usr/share/man/man5/pktd-policy.5.gz".into(), "-rw-r--r--"),
        (
            "/usr/share/bash-completion/completions/pktd".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/bash-completion/completions/pktcap".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/zsh/vendor-completions/_pktd".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/zsh/vendor-completions/_pktcap".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/fish/vendor_completions.d/pktd.fish".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/fish/vendor_completions.d/pktcap.fish".into(),
            "-rw-r--r--",
        ),
        ("/usr/share/doc/pktd/copyright".into(), "-rw-r--r--"),
        (
            "/usr/share/doc/pktd/changelog.Debian.gz".into(),
            "-rw-r--r--",
        ),
    ];
    for (path, mode) in &expected {
        let (got, owner, _) = files
            .get(path)
            .unwrap_or_else(|| panic!("the package lacks {path}"));
        assert_eq!(
            (got.as_str(), owner.as_str()),
            (*mode, "root/root"),
            "{path}"
        );
    }
    assert_eq!(
        files[&format!("{lib}/libwire.so.0")].2.as_deref(),
        Some(format!("libwire.so.{version}").as_str())
    );

    let root = scratch.0.join("root");
    install_into(&deb, &root);
    the_installed_files_work(&root, &lib);
    the_maintainer_scripts_do_what_they_say(&deb, &scratch.0);

    // lintian, when installed (bootstrap installs it): nothing to say.
    let lintian = Command::new("lintian")
        .args(["--tag-display-limit", "0", "--suppress-tags"])
        .arg("uses-no-compression-for-control-tarball,uses-no-compression-for-data-tarball")
        .arg(&deb)
        .output()
        .expect("running lintian (cargo xtask bootstrap installs it)");
    let said = text(&lintian);
    let tags: Vec<&str> = said
        .lines()
        .filter(|line| line.starts_with("E:") || line.starts_with("W:"))
        .collect();
    assert!(tags.is_empty(), "lintian:\n{}", tags.join("\n"));
    assert!(lintian.status.success(), "lintian: {said}");
}

/// dpkg installs (unpacks: the scripts are checked below) the package
/// into an empty root with a database of its own.
fn install_into(deb: &Path, root: &Path) {
    for dir in ["var/lib/dpkg/updates", "var/lib/dpkg/info"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-depends",
            "--force-script-chrootless",
            "--log=/dev/null",
            "--unpack",
        ])
        .arg(deb));
    let status = text(&run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--status", "pktd"])));
    assert!(status.contains("Status: install ok unpacked"), "{status}");
    assert!(
        status.contains("Conffiles:\n /etc/pktd/policy.toml "),
        "the policy is a conffile: {status}"
    );
    // Unpacked, a conffile waits beside its place until the package is
    // configured (which runs postinst: checked below, with stubs); put it
    // there as configuring does.
    let policy = root.join("etc/pktd/policy.toml");
    let new = root.join("etc/pktd/policy.toml.dpkg-new");
    assert!(new.exists(), "dpkg's conffile handling");
    std::fs::rename(new, policy).unwrap();
}

/// From the throw-away root: the daemon loads its kernel program and the
/// packaged policy and serves; pktcap lists through it; a C program built
/// against the installed header, pkg-config file and library talks to it;
/// the man pages render and a completion loads.
fn the_installed_files_work(root: &Path, lib: &str) {
    let at = |path: &str| root.join(path.trim_start_matches('/'));
    let policy = at("/etc/pktd/policy.toml");
    let checked = run(Command::new(at("/usr/sbin/pktd"))
        .arg("--policy")
        .arg(&policy)
        .arg("--check"));
    assert!(text(&checked).contains("OK"), "{}", text(&checked));

    let socket_dir = Scratch::new("package-socket");
    let socket = socket_dir.0.join("pktd.sock");
    let mut command = Command::new(at("/usr/sbin/pktd"));
    command
        .arg("--policy")
        .arg(&policy)
        .arg("--socket")
        .arg(&socket)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null());
    let mut daemon = Running::spawn(command);
    assert!(
        daemon.wait_for_stderr("pktd serving", Duration::from_secs(10)),
        "{:?}",
        daemon.stderr_lines
    );
    let listing = run(Command::new(at("/usr/bin/pktcap"))
        .args(["-D", "--socket"])
        .arg(&socket));
    assert!(text(&listing).contains(".lo"), "{}", text(&listing));

    // C against the installed library, through its pkg-config file.
    let flags = run(Command::new("pkg-config")
        .args(["--cflags", "--libs", "libwire"])
        .env("PKG_CONFIG_SYSROOT_DIR", root)
        .env("PKG_CONFIG_LIBDIR", at(&format!("{lib}/pkgconfig"))));
    let flags = text(&flags);
    assert!(flags.contains("-lwire"), "{flags}");
    let program = socket_dir.0.join("wire_example");
    run(Command::new("gcc")
        .args(["-Wall", "-Werror", "-o"])
        .arg(&program)
        .arg(at("/usr/share/doc/pktd/examples/wire_example.c"))
        .args(flags.split_whitespace()));
    let needed = text(&run(Command::new("readelf").arg("-d").arg(&program)));
    assert!(needed.contains("[libwire.so.0]"), "{needed}");
    // It lists the interfaces, then fails to open one that is not there.
    let ran = Command::new(&program)
        .arg("-S")
        .arg(&socket)
        .args(["-i", "nosuchif0", "-c", "1", "udp", "tcp"])
        .env("LD_LIBRARY_PATH", at(lib))
        .output()
        .expect("running the example");
    let said = String::from_utf8_lossy(&ran.stderr);
    assert!(said.contains("interface lo"), "{said}");
    assert!(said.contains("nosuchif0"), "{said}");
    assert_eq!(ran.status.code(), Some(1), "{said}");
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(15)).is_some());

    for page in [
        "/usr/share/man/man8/pktd.8.gz",
        "/usr/share/man/man1/pktcap.1.gz",
        "/usr/share/man/man5/pktd-policy.5.gz",
    ] {
        let rendered = run(Command::new("man")
            .args(["--warnings=all", "-l"])
            .arg(at(page))
            .env("MANWIDTH", "80")
            .env("PAGER", "cat"));
        assert!(rendered.stderr.is_empty(), "{page}");
        assert!(text(&rendered).contains("SEE ALSO"), "{page}");
    }
    let script = format!(
        "source {}; complete -p pktcap",
        at("/usr/share/bash-completion/completions/pktcap").display()
    );
    run(Command::new("bash").args(["--norc", "-c", &script]));
}

/// The maintainer scripts, run as dpkg runs them but with every command
/// that would change the system replaced by a stub that logs its
/// arguments: what each does, on a first install, an upgrade, a removal
/// and a purge.
fn the_maintainer_scripts_do_what_they_say(deb: &Path, dir: &Path) {
    let control = dir.join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        run(Command::new("sh").arg("-n").arg(&path));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{script}");
    }
    let stubs = dir.join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let log = dir.join("calls.log");
    let stub = |name: &str, status: i32| {
        let path = stubs.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{name} $*\" >> '{}'\nexit {status}\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let calls = |script: &str, args: &[&str], group_exists: bool| -> Vec<String> {
        let _ = std::fs::remove_file(&log);
        stub("getent", if group_exists { 0 } else { 2 });
        for name in [
            "addgroup",
            "chown",
            "chmod",
            "deb-systemd-helper",
            "deb-systemd-invoke",
            "systemctl",
        ] {
            stub(name, 0);
        }
        run(Command::new("sh")
            .arg(control.join(script))
            .args(args)
            .env("PATH", format!("{}:/usr/bin:/bin", stubs.display())));
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let first = calls("postinst", &["configure"], false);
    for expected in [
        "getent group pktd",
        "addgroup --system --quiet pktd",
        // What postrm masked on a removal is unmasked: both units.
        "deb-systemd-helper unmask pktd.socket",
        "deb-systemd-helper unmask pktd.service",
        "deb-systemd-helper enable pktd.socket",
    ] {
        assert!(
            first.iter().any(|call| call == expected),
            "{expected}: {first:?}"
        );
    }
    // The conffile is dpkg's to handle: the scripts leave it alone.
    assert!(
        !first
            .iter()
            .any(|call| call.starts_with("chown") || call.starts_with("chmod")),
        "{first:?}"
    );
    // An upgrade: the group is there already.
    let upgrade = calls("postinst", &["configure", "0.0.9-1"], true);
    assert!(
        !upgrade.iter().any(|call| call.starts_with("addgroup")),
        "{upgrade:?}"
    );
    let remove = calls("postrm", &["remove"], true);
    assert!(
        remove
            .iter()
            .any(|call| call == "deb-systemd-helper mask pktd.socket pktd.service"),
        "{remove:?}"
    );
    let purge = calls("postrm", &["purge"], true);
    assert!(
        purge
            .iter()
            .any(|call| call == "deb-systemd-helper purge pktd.socket pktd.service"),
        "{purge:?}"
    );
    // Nothing here runs systemd (the test machine has none as PID 1).
    assert!(calls("prerm", &["remove"], true).is_empty());
}
