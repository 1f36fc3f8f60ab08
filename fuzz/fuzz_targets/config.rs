//! The config file (`/etc/sshield/sshield.toml`) through `Config::parse`: any text is read or
//! refused with a line inside the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sshield_core::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("/etc/sshield/sshield.toml")) {
        Ok(config) => {
            let _ = config.record_store();
        }
        Err(e) => {
            if let ConfigError::Invalid {
                line: Some(line), ..
            } = &e
            {
                assert!(
                    *line >= 1 && *line <= text.lines().count().max(1) + 1,
                    "line {line}"
                );
            }
            let _ = e.to_string();
        }
    }
});
