//! The module exports the three `pam_sm_*` entry points and nothing else (`exports.map`), so
//! nothing of ours can interpose on a symbol of sshd, libc or another module.
#![allow(clippy::unwrap_used)] // a test that cannot go on fails, with the reason
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
