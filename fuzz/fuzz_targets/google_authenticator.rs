//! `~/.google_authenticator` files (`sshield import --google-authenticator`): any text is
//! imported or refused naming a line of the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sshield_core::import::{google_authenticator, ImportError};
use sshield_core::{UnixTime, UserName};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/home/alice/.google_authenticator");
    let user = UserName::new("alice").expect("a valid name");
    match google_authenticator::parse(text, path, &user, UnixTime(1_767_225_600)) {
        Ok(plan) => {
            assert!(plan.users.len() <= 1, "one file is one user");
            for note in &plan.notes {
                let _ = note.len();
            }
        }
        Err(e) => {
            if let ImportError::Line { line, .. } = &e {
                assert!(
                    *line >= 1 && *line <= text.lines().count().max(1),
                    "line {line}"
                );
            }
            let _ = e.to_string();
        }
    }
});
