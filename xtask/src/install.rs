//! `cargo xtask install [--prefix P]`: builds in release mode and installs
//! pktd and pktcap, libwire's C library (`libwire.so`, `libwire.a`), its
//! header `wire.h` and `libwire.pc`, and `pktd-extcap` in Wireshark's
//! extcap folder.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use crate::{
    bootstrap::bootstrap,
    process::{self, command, root},
    run::target_dir,
};

pub fn install(prefix: &Path, extcap_dir: Option<PathBuf>) -> Result<()> {
    bootstrap()?;
    process::run(
        command("cargo")
            .args(["+stable", "build", "--release"])
            .args(["-p", "pktd-daemon", "-p", "libwire", "-p", "libwire-c"])
            .current_dir(root()),
    )?;
    let release = target_dir().join("release");
    let lib = prefix.join("lib");
    let extcap = extcap_dir.unwrap_or_else(|| default_extcap_dir(prefix));
    let copies: [(PathBuf, PathBuf, u32); 8] = [
        (release.join("pktd"), prefix.join("sbin/pktd"), 0o755),
        (release.join("pktcap"), prefix.join("bin/pktcap"), 0o755),
        (release.join("libwire.so"), lib.join("libwire.so"), 0o755),
        (release.join("libwire.a"), lib.join("libwire.a"), 0o644),
        (
            release.join("include/wire.h"),
            prefix.join("include/wire.h"),
            0o644,
        ),
        (
            release.join("pktd-extcap"),
            extcap.join("pktd-extcap"),
            0o755,
        ),
        (
            root().join("examples/c/wire_example.c"),
            prefix.join("share/doc/libwire/examples/wire_example.c"),
            0o644,
        ),
        (
            root().join("README.md"),
            prefix.join("share/doc/libwire/README.md"),
            0o644,
        ),
    ];
    for (from, to, mode) in &copies {
        copy(from, to, *mode)?;
    }
    let version = env!("CARGO_PKG_VERSION");
    let pc = fs::read_to_string(root().join("libwire-c/libwire.pc.in"))
        .context("libwire-c/libwire.pc.in")?
        .replace("@PREFIX@", &prefix.display().to_string())
        .replace("@LIBDIR@", "${prefix}/lib")
        .replace("@INCLUDEDIR@", "${prefix}/include")
        .replace("@VERSION@", version);
    let pc_path = lib.join("pkgconfig/libwire.pc");
    fs::create_dir_all(pc_path.parent().expect("has a parent"))?;
    fs::write(&pc_path, pc).with_context(|| format!("writing {}", pc_path.display()))?;
    println!("xtask install: {}", pc_path.display());
    Ok(())
}

/// Where Wireshark looks for extcap programs: Debian's folder for
/// `/usr`, else under the prefix.
fn default_extcap_dir(prefix: &Path) -> PathBuf {
    if prefix == Path::new("/usr") {
        PathBuf::from("/usr/lib/x86_64-linux-gnu/wireshark/extcap")
    } else {
        prefix.join("lib/wireshark/extcap")
    }
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(to.parent().expect("an install path has a parent"))?;
    fs::copy(from, to).with_context(|| format!("{} -> {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    println!("xtask install: {}", to.display());
    Ok(())
}
