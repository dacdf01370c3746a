//! Generates `wire.h` from the C API's Rust source with cbindgen, into
//! `OUT_DIR` and next to the libraries (`target/<profile>/include/`),
//! where the tests and `cargo xtask install` find it.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed=src/lib.rs");
    // The ABI version programs record and the loader looks for
    // (`cargo xtask install` and `package` make the links).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libwire.so.0");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("libwire-c/cbindgen.toml");
    let bindings =
        cbindgen::generate_with_config(&crate_dir, config).expect("cbindgen generates wire.h");
    bindings.write_to_file(out_dir.join("wire.h"));
    // OUT_DIR is target/<profile>/build/libwire-c-<hash>/out.
    if let Some(profile_dir) = out_dir.ancestors().nth(3) {
        let include = profile_dir.join("include");
        std::fs::create_dir_all(&include).expect("target/<profile>/include");
        bindings.write_to_file(include.join("wire.h"));
    }
}
