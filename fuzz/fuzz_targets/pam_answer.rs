//! What a user types at the PAM prompt, as the module gets it: any bytes from the
//! conversation, cut at the first NUL (libpam hands over a C string) and read as UTF-8 with
//! replacement, as crates/pam/src/handle.rs does; then split into password and code
//! (`forward_pass`), told apart from a password (`try_first_pass`), and wrapped as the engine's
//! `Response`. The splitting and the shape rule live in core's private `shape` module (one
//! rule for `PAM_AUTHTOK` and `SSHIELD_CODE`), so crates/core/src/shape.rs is compiled here
//! from its own source file. The conversation itself (pointers, libpam's memory) is C and is
//! not fuzzed here.
#![no_main]
#![allow(
    dead_code,
    reason = "the module's source file is included whole; the target calls part of it"
)]

use libfuzzer_sys::fuzz_target;
use sshield_core::Response;

/// What the included file reaches as `crate::backup` inside core.
mod backup {
    pub use sshield_core::backup::*;
}

#[path = "../../crates/core/src/shape.rs"]
mod code_shape;

fuzz_target!(|data: &[u8]| {
    // The first bytes choose the user's token lengths, most common first (0 to 9 digits, so
    // lengths outside 6-8 are tried too); the rest is the answer, of any length.
    let (choice, answer) = data.split_at(data.len().min(3));
    let lengths: Vec<usize> = choice.iter().map(|b| usize::from(b % 10)).collect();
    let answer = answer.split(|b| *b == 0).next().unwrap_or_default();
    let typed = String::from_utf8_lossy(answer);

    let trimmed = typed.trim_end_matches(['\r', '\n']);
    let splits = code_shape::splits(&typed, &lengths);
    for (i, split) in splits.iter().enumerate() {
        assert_eq!(format!("{}{}", split.password, split.code), trimmed);
        assert!(lengths.contains(&split.code.len()));
        assert!(split.code.bytes().all(|b| b.is_ascii_digit()));
        assert!(splits[..i].iter().all(|s| s.code.len() != split.code.len()));
        // A code split off the end is one the prompt would take on its own.
        if (6..=8).contains(&split.code.len()) {
            assert!(code_shape::looks_like_code(split.code));
        }
        let _ = Response::new(split.code);
    }
    // Surrounding whitespace (a pasted newline) never changes what an answer looks like.
    let padded = format!(" {typed}\r\n");
    assert_eq!(
        code_shape::looks_like_code(&typed),
        code_shape::looks_like_code(&padded)
    );
    let _ = format!("{:?}", Response::new(&typed));
});
