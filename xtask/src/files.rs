//! What an installation of pktd holds and where it goes: one list for
//! `cargo xtask install` (under a prefix) and `cargo xtask package` (a
//! Debian tree). Man pages and completions come from the built binaries
//! (`--generate`), so they always say what those binaries do.

use std::{
    fs,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

use crate::process::{command, root, run_captured};

/// libwire.so's ABI version: its SONAME is `libwire.so.0`.
pub const SONAME: &str = "libwire.so.0";

/// The directories an installation uses.
pub struct Dirs {
    /// Where paths inside the installation are written from (`DESTDIR`):
    /// `/` for an installation, the package's tree for a package.
    pub staging: PathBuf,
    /// The prefix the installed files see (`/usr`, `/usr/local`).
    pub prefix: PathBuf,
    /// Libraries, under the prefix (`lib`, `lib/x86_64-linux-gnu`).
    pub libdir: PathBuf,
    /// Wireshark's extcap folder (absolute, as installed).
    pub extcap: PathBuf,
    /// Compress man pages (`gzip -9n`), as Debian wants.
    pub compress_man: bool,
    /// Install `libwire.a` too.
    pub static_library: bool,
}

impl Dirs {
    /// Where `installed` (an absolute path as the system will see it)
    /// is written now.
    pub fn at(&self, installed: &Path) -> PathBuf {
        self.staging
            .join(installed.strip_prefix("/").unwrap_or(installed))
    }

    fn under_prefix(&self, relative: &str) -> PathBuf {
        self.at(&self.prefix.join(relative))
    }
}

/// Installs everything built in `profile_dir` (target/release, or
/// target/debug) into `dirs`.
pub fn install_files(profile_dir: &Path, dirs: &Dirs) -> Result<()> {
    let lib = dirs.at(&dirs.prefix.join(&dirs.libdir));
    let version = env!("CARGO_PKG_VERSION");
    let mut copies = vec![
        (
            profile_dir.join("pktd"),
            dirs.under_prefix("sbin/pktd"),
            0o755,
        ),
        (
            profile_dir.join("pktcap"),
            dirs.under_prefix("bin/pktcap"),
            0o755,
        ),
        (
            profile_dir.join("libwire.so"),
            lib.join(format!("libwire.so.{version}")),
            0o644,
        ),
        (
            profile_dir.join("include/wire.h"),
            dirs.under_prefix("include/wire.h"),
            0o644,
        ),
        (
            profile_dir.join("pktd-extcap"),
            dirs.at(&dirs.extcap).join("pktd-extcap"),
            0o755,
        ),
        (
            root().join("examples/c/wire_example.c"),
            dirs.under_prefix("share/doc/pktd/examples/wire_example.c"),
            0o644,
        ),
    ];
    if dirs.static_library {
        copies.push((profile_dir.join("libwire.a"), lib.join("libwire.a"), 0o644));
    }
    for (from, to, mode) in &copies {
        copy(from, to, *mode)?;
    }
    // libwire.so.0 -> libwire.so.VERSION (what programs load), and
    // libwire.so -> libwire.so.0 (what the linker finds for -lwire).
    link(&format!("libwire.so.{version}"), &lib.join(SONAME))?;
    link(SONAME, &lib.join("libwire.so"))?;

    let libdir = dirs.prefix.join(&dirs.libdir);
    let pc = fs::read_to_string(root().join("libwire-c/libwire.pc.in"))
        .context("libwire-c/libwire.pc.in")?
        .replace("@PREFIX@", &dirs.prefix.display().to_string())
        .replace("@LIBDIR@", &libdir.display().to_string())
        .replace("@INCLUDEDIR@", "${prefix}/include")
        .replace("@VERSION@", version);
    write(&lib.join("pkgconfig/libwire.pc"), pc.as_bytes(), 0o644)?;

    // Man pages: pktd(8) and pktcap(1) from the binaries, pktd-policy(5)
    // as written.
    let man = dirs.under_prefix("share/man");
    for (binary, section) in [("pktd", "8"), ("pktcap", "1")] {
        let page = generated(&profile_dir.join(binary), "man")?;
        write_man(
            &man.join(format!("man{section}/{binary}.{section}")),
            &page,
            dirs.compress_man,
        )?;
    }
    let policy_page = fs::read(root().join("docs/man/pktd-policy.5"))?;
    write_man(
        &man.join("man5/pktd-policy.5"),
        &policy_page,
        dirs.compress_man,
    )?;

    // Completions, where each shell's packages put theirs.
    for binary in ["pktd", "pktcap"] {
        let path = profile_dir.join(binary);
        let places = [
            (
                "bash",
                format!("share/bash-completion/completions/{binary}"),
            ),
            ("zsh", format!("share/zsh/vendor-completions/_{binary}")),
            (
                "fish",
                format!("share/fish/vendor_completions.d/{binary}.fish"),
            ),
        ];
        for (shell, place) in places {
            write(&dirs.under_prefix(&place), &generated(&path, shell)?, 0o644)?;
        }
    }
    Ok(())
}

/// `BINARY --generate WHAT`'s output.
fn generated(binary: &Path, what: &str) -> Result<Vec<u8>> {
    let output = run_captured(command(binary).args(["--generate", what]))?;
    Ok(output.stdout)
}

fn write_man(path: &Path, page: &[u8], compress: bool) -> Result<()> {
    if !compress {
        return write(path, page, 0o644);
    }
    let plain = path.to_path_buf();
    write(&plain, page, 0o644)?;
    // -n: no name or time stamp, so that the package is reproducible.
    run_captured(command("gzip").args(["-9nf"]).arg(&plain))?;
    let zipped = PathBuf::from(format!("{}.gz", plain.display()));
    if !zipped.exists() {
        bail!("gzip left no {}", zipped.display());
    }
    Ok(())
}

pub fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(to.parent().expect("an install path has a parent"))?;
    fs::copy(from, to).with_context(|| format!("{} -> {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

pub fn write(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    fs::create_dir_all(path.parent().expect("an install path has a parent"))?;
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// `path` -> `target` (relative), replacing what was there.
fn link(target: &str, path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("replacing {}", path.display())),
    }
    symlink(target, path).with_context(|| format!("linking {}", path.display()))
}
