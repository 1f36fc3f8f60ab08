//! Links the module with a version script that exports the `pam_sm_*` entry points and
//! nothing else, and with gcc's unwinder built in rather than loaded from `libgcc_s.so.1`.
//!
//! rustc already hides Rust's own symbols in a cdylib, but it exports every `#[no_mangle]`
//! function of every crate linked in. The script makes the rule independent of what a
//! dependency declares: a stray exported C symbol inside sshd could interpose on libc or
//! libpam for every other module in the process.
//!
//! The unwinder: every `pam_sm_*` catches panics, which needs one. On linux-gnu, std gets it
//! from `libgcc_s.so.1`, so libpam's dlopen of the module, which sshd repeats for every
//! connection, also had to find, map and relocate that library and run its constructor
//! (`pam_start` took 250 µs with it and 93 µs without, docs/benchmarks.md). `libgcc_eh.a` is
//! the same unwinder as a static archive, the one `gcc -static-libgcc` links into shared
//! libraries. Named before std's `-lgcc_s`, it provides the `_Unwind_*` symbols, so the linker
//! (`--as-needed`) drops `libgcc_s`; the version script keeps them local (`tests/exports.rs`
//! checks both). Panics are still caught: the crate's unit tests link the same unwinder and
//! include a panic that must fail closed. Where the compiler driver has no `libgcc_eh.a`, the
//! module links `libgcc_s` as before.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("exports.map");
    println!("cargo:rerun-if-changed=exports.map");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        script.display()
    );
    link_static_unwinder();
}

fn link_static_unwinder() {
    println!("cargo:rerun-if-env-changed=CC");
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    if target("CARGO_CFG_TARGET_OS") != "linux" || target("CARGO_CFG_TARGET_ENV") != "gnu" {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    // `-print-file-name` prints the bare name back when it finds no such file.
    let found = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|path| path.is_absolute() && path.is_file());
    match found.as_deref().and_then(|path| path.parent()) {
        Some(dir) => {
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static=gcc_eh");
        }
        None => println!(
            "cargo:warning=no libgcc_eh.a from `{cc} -print-file-name`: pam_sshield.so links libgcc_s.so.1, which makes loading it slower"
        ),
    }
}
