//! Login-state files (`.USER.state`): two checksummed slots, decoded by the store's own
//! crates/core/src/login_state.rs, compiled here from its source file because the module is
//! private to sshield-core. Any bytes are read as a file of two slots: a slot that decodes as
//! valid re-encodes to the same bytes; the newest slot is valid and no older than the other;
//! a valid payload is parsed as the store parses it (`[usage]` TOML), and what parses is
//! written, encoded, and decoded back to the same payload.
#![no_main]
#![allow(
    dead_code,
    reason = "core's source file is included whole; the target calls part of it"
)]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sshield_core::record::Usage;
use sshield_core::store::parse_toml;

#[path = "../../crates/core/src/login_state.rs"]
mod login_state;

use login_state::{SlotContent, MIN_SLOT};

const HEADER: usize = 32;

fuzz_target!(|data: &[u8]| {
    // The file: the input, zero-padded to two slots of the smallest size (or the size it
    // names, if that is a valid state-file length), as the store would have read it.
    let slot_size = login_state::slot_size_of(data.len() as u64, 1 << 20).unwrap_or(MIN_SLOT);
    let mut file = data.to_vec();
    file.resize(file.len().max(2 * slot_size), 0);
    file.truncate(2 * slot_size);

    let mut valid = Vec::new();
    for (index, slot) in file.chunks_exact(slot_size).enumerate() {
        if let SlotContent::Valid {
            generation,
            payload,
        } = login_state::decode(slot)
        {
            let again = login_state::encode(generation, payload, slot_size)
                .expect("a valid slot's payload fits its slot");
            assert_eq!(
                &slot[..again.len()],
                &again[..],
                "a valid slot re-encodes differently"
            );
            valid.push((index, generation));
        }
    }
    let slots = login_state::read(&file, slot_size);
    match slots.newest {
        Some((index, generation, payload)) => {
            assert!(valid.contains(&(index, generation)));
            assert!(valid.iter().all(|&(_, g)| g <= generation));
            check_payload(generation, payload);
        }
        None => assert!(valid.is_empty()),
    }

    // And the input as a payload of its own: encoded, it decodes to itself.
    if data.len() + HEADER <= MIN_SLOT {
        let mut slot = login_state::encode(7, data, MIN_SLOT).expect("fits");
        slot.resize(MIN_SLOT, 0);
        assert_eq!(
            login_state::decode(&slot),
            SlotContent::Valid {
                generation: 7,
                payload: data
            }
        );
        check_payload(7, data);
    }
});

/// Parses `payload` as the store does; what parses is written, encoded, decoded and parsed
/// again to the same text.
fn check_payload(generation: u64, payload: &[u8]) {
    let path = Path::new("/var/lib/sshield/users/.fuzz.state");
    let Ok(text) = std::str::from_utf8(payload) else {
        return;
    };
    let Ok(usage) = parse_toml::<Usage>(text, path) else {
        return;
    };
    let written = toml::to_string(&usage).expect("usage serializes");
    let size = login_state::slot_size_for(written.len());
    let mut slot = login_state::encode(generation, written.as_bytes(), size).expect("fits");
    slot.resize(size, 0);
    let SlotContent::Valid { payload, .. } = login_state::decode(&slot) else {
        panic!("a freshly encoded slot does not decode");
    };
    let again: Usage = parse_toml(std::str::from_utf8(payload).expect("text"), path)
        .expect("written usage reads back");
    assert_eq!(toml::to_string(&again).expect("serializes"), written);
}
