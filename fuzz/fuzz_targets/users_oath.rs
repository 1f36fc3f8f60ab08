//! pam_oath's usersfile (`sshield import --users-oath`): any text is imported or refused
//! naming a line of the file; every imported user has a non-empty secret.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sshield_core::import::{users_oath, ImportError};
use sshield_core::UnixTime;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/users.oath");
    match users_oath::parse(text, path, UnixTime(1_767_225_600)) {
        Ok(plan) => {
            for user in &plan.users {
                let _ = format!("{user:?}");
            }
            for note in &plan.notes {
                assert!(
                    note.contains("/etc/users.oath"),
                    "a note names no file: {note}"
                );
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
