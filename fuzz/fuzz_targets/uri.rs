//! otpauth:// Key URIs (`sshield enroll --uri`, imports): any text; one that parses prints
//! back to a URI that parses to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sshield_otp::KeyUri;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = KeyUri::parse(text) else {
        return;
    };
    let printed = key.to_uri();
    match KeyUri::parse(&printed) {
        Ok(again) => assert_eq!(again, key, "the printed URI reads back differently"),
        Err(e) => panic!("the printed URI does not parse: {e}"),
    }
});
