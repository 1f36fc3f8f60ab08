//! The daemon's socket protocol (`sshield login` <-> `sshield daemon`). The `sshield` crate
//! is a binary with no library, so crates/cli/src/protocol.rs, which holds every byte of the
//! parsing (line framing, requests, replies), is compiled here from its own source file. Any
//! bytes are read the way the daemon reads a connection: lines of at most MAX_LINE bytes,
//! each parsed as a request; a `check` request that parses is written by the client's own
//! writer and parsed again, to the same request (its `entry` included). The same bytes are read as the client reads replies; a reply that
//! parses is written and read back equal.
#![no_main]
#![allow(
    dead_code,
    reason = "the CLI's source file is included whole; the target calls part of it"
)]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/cli/src/protocol.rs"]
mod protocol;

use protocol::{LineReader, Request, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    let mut reader = LineReader::new(data);
    while let Ok(Some(line)) = reader.read_line() {
        assert!(line.len() <= MAX_LINE);
        if let Ok(Request::Check { pre_supplied, .. }) = protocol::parse_request(&line) {
            let code = serde_json::from_slice::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("code").and_then(|c| c.as_str().map(str::to_owned)))
                .expect("a check request has a code");
            let mut out = Vec::new();
            protocol::write_check(&mut out, &code, pre_supplied).expect("writes to memory");
            let again = LineReader::new(&out[..]).read_line();
            let Ok(Some(again)) = again else {
                panic!("the client's check line does not read back");
            };
            // The same request again, from where the code came included.
            assert!(matches!(
                protocol::parse_request(&again),
                Ok(Request::Check { pre_supplied: p, .. }) if p == pre_supplied
            ));
        }
    }

    let mut reader = LineReader::new(data);
    while let Ok(reply) = protocol::read_reply(&mut reader) {
        let mut out = Vec::new();
        protocol::write_reply(&mut out, &reply).expect("writes to memory");
        let again = protocol::read_reply(&mut LineReader::new(&out[..]));
        match again {
            Ok(again) if out.len() < MAX_LINE => assert_eq!(again, reply),
            Ok(_) => {}
            Err(e) => panic!("a written reply does not read back: {e}"),
        }
    }
});
