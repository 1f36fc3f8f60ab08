//! Base32 secrets as people type them: any text decodes or is refused; what decodes encodes
//! to the canonical form, which decodes to the same bytes; any bytes survive encode + decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshield_otp::{decode_base32, encode_base32};

fuzz_target!(|data: &[u8]| {
    // Any bytes, encoded, decode to themselves (an empty secret is refused).
    let encoded = encode_base32(data);
    match decode_base32(&encoded) {
        Ok(bytes) => assert_eq!(bytes.as_slice(), data),
        Err(e) => assert!(data.is_empty(), "{e}"),
    }
    // Any text: decodes or is refused with an error that does not repeat it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = decode_base32(text) {
        let canonical = encode_base32(&bytes);
        assert!(canonical
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(decode_base32(&canonical).ok().as_deref(), Some(&*bytes));
    }
});
