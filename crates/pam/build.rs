//! Links the module with a version script that exports the `pam_sm_*` entry points and
//! nothing else.
//!
//! rustc already hides Rust's own symbols in a cdylib, but it exports every `#[no_mangle]`
//! function of every crate linked in. The script makes the rule independent of what a
//! dependency declares: a stray exported C symbol inside sshd could interpose on libc or
//! libpam for every other module in the process.

fn main() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("exports.map");
    println!("cargo:rerun-if-changed=exports.map");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        script.display()
    );
}
