//! The module exports the three `pam_sm_*` entry points and nothing else (`exports.map`), so
//! nothing of ours can interpose on a symbol of sshd, libc or another module.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]
#[path = "harness/build.rs"]
mod build;

use std::process::Command;

#[test]
fn only_the_pam_entry_points_are_exported() {
    let module = build::module_so();
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(module)
        .output()
        .expect("run nm (binutils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    // Lines are `ADDRESS TYPE NAME`; versioned names end in `@@VERSION`, none expected.
    let mut names: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["pam_sm_acct_mgmt", "pam_sm_authenticate", "pam_sm_setcred"],
        "nm -D --defined-only {}:\n{listing}",
        module.display()
    );
}

/// The module carries its own unwinder (build.rs): loading `libgcc_s.so.1` as well made every
/// `pam_start` slower. Skipped where the compiler has no `libgcc_eh.a` to link it from.
#[test]
fn the_module_does_not_load_libgcc_s() {
    let found = Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|path| std::path::Path::new(path).is_absolute());
    if found.is_none() {
        // Debian's gcc always has it; CI must not pass by skipping.
        assert!(
            std::env::var_os("CI").is_none(),
            "no libgcc_eh.a from `cc -print-file-name` (install gcc)"
        );
        eprintln!("skipped: no libgcc_eh.a, so build.rs links libgcc_s");
        return;
    }
    let needed = needed_libraries();
    assert!(
        !needed.iter().any(|l| l.contains("libgcc_s")),
        "readelf -d {}: {needed:#?}",
        build::module_so().display()
    );
}

/// The libraries the module names in its `NEEDED` entries, as `readelf -d` shows them.
fn needed_libraries() -> Vec<String> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(build::module_so())
        .output()
        .expect("run readelf (binutils)");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.strip_suffix(']')?.to_owned()))
        .collect()
}

/// The module needs glibc (libc and its loader) and libpam by its soname, nothing else: it is
/// linked against `libpam.so.0` itself, so building it needs no libpam0g-dev (issue 9, item 17;
/// `scripts/check-fresh-build` builds it with that package hidden).
#[test]
fn the_module_links_only_libc_and_libpam() {
    let needed = needed_libraries();
    assert!(needed.iter().any(|n| n == "libpam.so.0"), "{needed:?}");
    let glibc = |name: &str| name == "libc.so.6" || name.starts_with("ld-linux");
    let other: Vec<&String> = needed
        .iter()
        .filter(|n| *n != "libpam.so.0" && !glibc(n))
        .collect();
    assert!(
        other.is_empty(),
        "readelf -d {}: {needed:?}",
        build::module_so().display()
    );
}
