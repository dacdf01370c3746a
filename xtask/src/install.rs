//! `cargo xtask install [--prefix P]`: builds in release mode and installs
//! pktd and pktcap, libwire's C library (`libwire.so` with its SONAME
//! links, `libwire.a`), its header `wire.h` and `libwire.pc`, the man
//! pages and completions, and `pktd-extcap` in Wireshark's extcap folder
//! (the list is `files.rs`'s).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::{
    bootstrap::bootstrap,
    files::{Dirs, install_files},
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
    let dirs = Dirs {
        staging: PathBuf::from("/"),
        prefix: prefix.to_path_buf(),
        libdir: PathBuf::from("lib"),
        extcap: extcap_dir.unwrap_or_else(|| default_extcap_dir(prefix)),
        compress_man: false,
        static_library: true,
    };
    install_files(&target_dir().join("release"), &dirs)?;
    println!("xtask install: installed under {}", prefix.display());
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
