//! The committed man pages (docs/man-server) are exactly what the clap definitions generate.

mod support;

use std::fs;
use std::path::Path;

#[test]
fn committed_man_pages_are_up_to_date() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/man-server");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("man");
    let status = support::server::binary()
        .arg("generate-docs")
        .arg(&out)
        .status()
        .expect("run");
    assert!(status.success());
    let list = |dir: &Path| {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    // sshield-server.toml.5 is made from docs/config.md (scripts/config-man).
                    .filter(|name| name.ends_with(".1"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let fix = "run `cargo run -p sshield-server -- generate-docs docs/man-server` and commit it";
    assert_eq!(list(&committed), list(&out), "{fix}");
    assert!(list(&out).contains(&"sshield-server-serve.1".to_owned()));
    for name in list(&out) {
        let a = fs::read(committed.join(&name)).expect("committed page");
        let b = fs::read(out.join(&name)).expect("generated page");
        assert!(a == b, "docs/man-server/{name} is out of date: {fix}");
    }
}
