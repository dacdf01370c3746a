//! `cargo xtask package [--profile P] [--no-build] [--uncompressed] [--out
//! DIR]`: a Debian
//! package of pktd, built with dpkg's own tools (dpkg-shlibdeps for the
//! library dependencies, dpkg-deb for the archive), so that nothing beyond
//! a Debian system is needed.
//!
//! It holds what `cargo xtask install` installs (`files.rs`), laid out the
//! Debian way (`/usr`, the multiarch library directory, compressed man
//! pages), plus the systemd units (`packaging/systemd/`), the default
//! policy `/etc/pktd/policy.toml` (a conffile, root's alone), and the
//! maintainer scripts (`packaging/debian/`) that make the `pktd` group the
//! socket admits and enable the socket.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    files::{Dirs, copy, install_files, write},
    process::{self, command, root, run_captured},
    run::target_dir,
};

/// The package's name and the Debian revision of this version.
const NAME: &str = "pktd";
const REVISION: &str = "1";

pub fn package(profile: &str, build: bool, compress: bool, out: Option<PathBuf>) -> Result<()> {
    if build {
        crate::bootstrap::bootstrap()?;
        process::run(
            command("cargo")
                .args(["+stable", "build", "--profile", profile])
                .args(["-p", "pktd-daemon", "-p", "libwire", "-p", "libwire-c"])
                .current_dir(root()),
        )?;
    }
    // Cargo's "dev" profile builds into target/debug.
    let profile_dir = target_dir().join(if profile == "dev" { "debug" } else { profile });
    let arch = query(command("dpkg").arg("--print-architecture"))?;
    let multiarch = query(command("dpkg-architecture").arg("-qDEB_HOST_MULTIARCH"))?;
    let version = format!("{}-{REVISION}", env!("CARGO_PKG_VERSION"));
    let tree = target_dir()
        .join("package")
        .join(format!("{NAME}_{version}_{arch}"));
    if tree.exists() {
        fs::remove_dir_all(&tree).with_context(|| format!("clearing {}", tree.display()))?;
    }
    let dirs = Dirs {
        staging: tree.clone(),
        prefix: PathBuf::from("/usr"),
        libdir: PathBuf::from("lib").join(&multiarch),
        extcap: PathBuf::from(format!("/usr/lib/{multiarch}/wireshark/extcap")),
        compress_man: true,
        // The shared library only: programs link against it (Debian's
        // preference), and lintian's look at every member of Rust's
        // static library takes minutes. `cargo xtask install` has both.
        static_library: false,
    };
    install_files(&profile_dir, &dirs)?;
    strip(&dirs, &multiarch)?;

    let packaging = root().join("packaging");
    for unit in ["pktd.service", "pktd.socket"] {
        copy(
            &packaging.join("systemd").join(unit),
            &dirs.at(&Path::new("/lib/systemd/system").join(unit)),
            0o644,
        )?;
    }
    copy(
        &packaging.join("debian/policy.toml"),
        &dirs.at(Path::new("/etc/pktd/policy.toml")),
        0o600,
    )?;
    let doc = dirs.at(Path::new("/usr/share/doc/pktd"));
    copy(
        &packaging.join("debian/copyright"),
        &doc.join("copyright"),
        0o644,
    )?;
    copy(&root().join("README.md"), &doc.join("README.md"), 0o644)?;
    copy(
        &packaging.join("debian/changelog"),
        &doc.join("changelog.Debian"),
        0o644,
    )?;
    run_captured(
        command("gzip")
            .args(["-9nf"])
            .arg(doc.join("changelog.Debian")),
    )?;
    copy(
        &packaging.join("debian/lintian-overrides"),
        &dirs.at(Path::new("/usr/share/lintian/overrides/pktd")),
        0o644,
    )?;

    let control = tree.join("DEBIAN");
    for script in ["postinst", "prerm", "postrm"] {
        copy(
            &packaging.join("debian").join(script),
            &control.join(script),
            0o755,
        )?;
    }
    copy(
        &packaging.join("debian/triggers"),
        &control.join("triggers"),
        0o644,
    )?;
    write(
        &control.join("conffiles"),
        b"/etc/pktd/policy.toml\n",
        0o644,
    )?;
    // Programs linked against libwire.so.0 depend on this package.
    write(
        &control.join("shlibs"),
        format!("libwire 0 {NAME} (>= {})\n", env!("CARGO_PKG_VERSION")).as_bytes(),
        0o644,
    )?;
    let depends = shared_library_depends(&tree, &dirs)?;
    let fields = format!(
        "Package: {NAME}\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: pktd developers <pktd@example.org>\n\
         Installed-Size: {size}\n\
         Depends: {depends}, adduser, init-system-helpers (>= 1.52)\n\
         Recommends: tcpdump\n\
         Suggests: tshark\n\
         Section: net\n\
         Priority: optional\n\
         Description: packet capture and injection multiplexer\n \
         pktd is the one privileged daemon that owns the network devices:\n \
         unprivileged tools ask it, through its client library libwire, to\n \
         capture with a tcpdump filter, record traces or inject packets, and\n \
         the box owner's policy decides per user what each may see, how much,\n \
         where it may write and what it may inject. Filters run in the kernel\n \
         as eBPF.\n \
         .\n \
         This package holds the daemon with its systemd units, pktcap (tcpdump's\n \
         flags), pktd-extcap for Wireshark, and libwire for C programs (library,\n \
         header, pkg-config file).\n",
        size = installed_size_kib(&tree)?,
    );
    write(&control.join("control"), fields.as_bytes(), 0o644)?;
    write_md5sums(&tree)?;

    let out = out.unwrap_or_else(|| target_dir().join("package"));
    fs::create_dir_all(&out)?;
    let deb = out.join(format!("{NAME}_{version}_{arch}.deb"));
    run_captured(
        command("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(if compress { "-Zxz" } else { "-Znone" })
            .arg(&tree)
            .arg(&deb),
    )?;
    println!("xtask package: {}", deb.display());
    Ok(())
}

/// Strips the binaries as Debian packages ship them (dh_strip's options):
/// symbols and debug information out of programs and the shared
/// library.
fn strip(dirs: &Dirs, multiarch: &str) -> Result<()> {
    let lib = PathBuf::from(format!("/usr/lib/{multiarch}"));
    let programs = [
        PathBuf::from("/usr/sbin/pktd"),
        PathBuf::from("/usr/bin/pktcap"),
        dirs.extcap.join("pktd-extcap"),
        lib.join(format!("libwire.so.{}", env!("CARGO_PKG_VERSION"))),
    ];
    for program in &programs {
        run_captured(
            command("strip")
                .args([
                    "--remove-section=.comment",
                    "--remove-section=.note",
                    "--strip-unneeded",
                ])
                .arg(dirs.at(program)),
        )?;
    }
    Ok(())
}

/// One line of a command's standard output.
fn query(command: &mut std::process::Command) -> Result<String> {
    let output = run_captured(command)?;
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// The packages the binaries' shared libraries come from, as
/// dpkg-shlibdeps says (it wants a debian/control beside it).
fn shared_library_depends(tree: &Path, dirs: &Dirs) -> Result<String> {
    let work = tree.with_extension("shlibdeps");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    fs::create_dir_all(work.join("debian"))?;
    fs::write(
        work.join("debian/control"),
        format!("Source: {NAME}\n\nPackage: {NAME}\nArchitecture: any\n"),
    )?;
    let lib = dirs.at(&dirs.prefix.join(&dirs.libdir));
    let binaries = [
        dirs.at(Path::new("/usr/sbin/pktd")),
        dirs.at(Path::new("/usr/bin/pktcap")),
        dirs.at(&dirs.extcap).join("pktd-extcap"),
        lib.join(format!("libwire.so.{}", env!("CARGO_PKG_VERSION"))),
    ];
    let output = run_captured(
        command("dpkg-shlibdeps")
            .args(["-O", "--ignore-missing-info"])
            .args(binaries.iter().map(|path| {
                let mut arg = std::ffi::OsString::from("-e");
                arg.push(path);
                arg
            }))
            .current_dir(&work),
    )?;
    fs::remove_dir_all(&work)?;
    let text = String::from_utf8(output.stdout)?;
    let depends = text
        .lines()
        .find_map(|line| line.strip_prefix("shlibs:Depends="))
        .map(str::to_owned);
    match depends {
        Some(depends) if !depends.is_empty() => Ok(depends),
        _ => bail!("dpkg-shlibdeps found no dependencies: {text}"),
    }
}

/// The installed size in KiB, as dpkg counts it (files and symlinks,
/// rounded up each).
fn installed_size_kib(tree: &Path) -> Result<u64> {
    let mut total = 0;
    for path in walk(tree)? {
        if path.starts_with(tree.join("DEBIAN")) {
            continue;
        }
        let meta = fs::symlink_metadata(&path)?;
        total += meta.len().div_ceil(1024).max(1);
    }
    Ok(total)
}

/// DEBIAN/md5sums: every regular file but the control area, relative.
fn write_md5sums(tree: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = walk(tree)?
        .into_iter()
        .filter(|path| !path.starts_with(tree.join("DEBIAN")))
        .filter(|path| fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file()))
        .map(|path| {
            path.strip_prefix(tree)
                .expect("under the tree")
                .to_path_buf()
        })
        .collect();
    files.sort();
    let output = run_captured(command("md5sum").args(&files).current_dir(tree))?;
    write(&tree.join("DEBIAN/md5sums"), &output.stdout, 0o644)
}

/// Every file and symlink under `dir`.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).with_context(|| format!("reading {}", next.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    Ok(found)
}
