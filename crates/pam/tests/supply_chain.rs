//! docs/supply-chain.md names every crate compiled into the module, and no crate joins the
//! module's tree without a line there saying why.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The crate names of `cargo tree -p sshield-pam -e normal`, ours left out.
fn module_crates() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            "sshield-pam",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo tree: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| !name.starts_with("sshield"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_crate_in_the_module_is_listed_with_its_reason() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/supply-chain.md");
    let doc = std::fs::read_to_string(&doc_path).unwrap();
    let crates = module_crates();
    assert!(
        crates.contains("libc") && crates.contains("toml"),
        "{crates:?}"
    );
    let missing: Vec<&String> = crates
        .iter()
        .filter(|name| !doc.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} does not say why the module needs {missing:?}: add a row to its table",
        doc_path.display()
    );
}
