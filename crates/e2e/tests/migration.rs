//! Moving from pam_oath to sshield against the real pam_oath (oath-toolkit's liboath): logins
//! through pam_oath with `pamtester`, then `sshield import users-oath` on the file it wrote,
//! then logins through pam_sshield (docs/migration.md).
//!
//! Root only (`/etc/pam.d`); elsewhere it skips, in CI it fails.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]
mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// RFC 4226's test key, hex for users.oath and base32 for the app (and oathtool -b).
const KEY_HEX: &str = "3132333435363738393031323334353637383930";
const KEY_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// Where pam_oath lives on Debian.
const PAM_OATH: &str = "/lib/x86_64-linux-gnu/security/pam_oath.so";

/// Attack review, issue 9 item 18: liboath checks a code of the length the user types,
/// whatever the line's type says, so a 6-digit phone works on a `HOTP/T30/8` line and pam_oath
/// records its code. The import must keep that phone working (a 6-digit token), carry the used
/// code over, and say what it did.
#[test]
fn a_six_digit_phone_on_an_eight_digit_line_keeps_working_after_the_import() {
    if !can_run() {
        return;
    }
    require_tool("pamtester", "apt-get install pamtester");
    assert!(
        Path::new(PAM_OATH).exists(),
        "{PAM_OATH} is missing: apt-get install libpam-oath"
    );
    let sshield = Sshield::new("");
    let usersfile = sshield.dir().join("users.oath");
    let user = "zoe";
    fs::write(&usersfile, format!("HOTP/T30/8 {user} - {KEY_HEX}\n")).unwrap();
    let oath = PamService::create(
        "oath",
        [format!(
            "auth required {PAM_OATH} usersfile={} window=1",
            usersfile.display()
        )],
    );
    let phone = Token::from_secret(KEY_BASE32);

    // The phone shows 6 digits; pam_oath takes them and records the code.
    let step = current_step();
    let used = phone.code_at_step(step);
    let run = pamtester(oath.name(), user, None, &[&used]);
    assert!(
        run.success,
        "pam_oath refused a 6-digit code: {}",
        run.output
    );
    let written = fs::read_to_string(&usersfile).unwrap();
    assert!(written.contains(&format!("\t{used}\t")), "{written}");

    let out = Command::new(&sshield_e2e::artefacts().cli)
        .arg("--config")
        .arg(&sshield.config)
        .args(["import", "users-oath"])
        .arg(&usersfile)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let module = sshield.auth_line("");
    let sshield_service = PamService::create("oathmoved", [module.as_str()]);
    let run = pamtester(sshield_service.name(), user, None, &[&used]);
    assert!(!run.success, "the code pam_oath took was accepted again");
    assert!(
        sshield
            .log_lines_with(&format!("deny user={user} rhost=-"))
            .iter()
            .any(|l| l.contains("reason=replayed")),
        "{:#?}",
        sshield.log_lines()
    );
    let next = phone.code_at_step(step + 1);
    let run = pamtester(sshield_service.name(), user, None, &[&next]);
    assert!(run.success, "the phone's next code: {}", run.output);
    // And the admin was told.
    assert!(
        stderr.contains("says 8 digits, but the last code zoe used was 6 digits long")
            && stderr.contains("imported with 6 digits"),
        "{stderr}"
    );
}
