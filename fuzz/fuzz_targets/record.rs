//! User records (`/var/lib/sshield/users/USER.toml`) through the store's own parser: any text
//! is read or refused with a line inside the file; a record that reads is written (as the
//! store writes it) to text that reads back and writes out the same.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sshield_core::store::{parse_record, StoreError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/var/lib/sshield/users/fuzz.toml");
    let record = match parse_record(text, path) {
        Ok(record) => record,
        Err(StoreError::Invalid { line, .. }) => {
            if let Some(line) = line {
                assert!(
                    line >= 1 && line <= text.lines().count().max(1) + 1,
                    "line {line}"
                );
            }
            return;
        }
        Err(e) => panic!("parsing text gave a non-parse error: {e}"),
    };
    let written = toml::to_string(&record).expect("a record read serializes");
    let again = parse_record(&written, path).expect("a written record reads back");
    let rewritten = toml::to_string(&again).expect("serializes");
    assert_eq!(
        written, rewritten,
        "a record changes on a write-read-write cycle"
    );
});
