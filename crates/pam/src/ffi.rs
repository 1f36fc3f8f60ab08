//! The parts of Linux-PAM's C interface this crate uses, written by hand.
//!
//! Each item is copied from the Linux-PAM 1.5 headers named beside it
//! (`/usr/include/security/`, package `libpam0g-dev`); the test at the bottom reads
//! `_pam_types.h` and fails if a number here no longer matches it. Only what the module or its
//! test driver calls is declared: the module needs items, the user name, the environment, one
//! prompt and syslog; the conversation structs are here for the test driver, which plays the
//! application's side (`tests/harness/driver.rs` includes this file).
//!
//! Names keep their C spelling so that each line can be checked against the header by eye.
#![allow(
    non_camel_case_types,
    reason = "names keep their C spelling, to check each line against the header"
)]

use std::ffi::{c_char, c_int, c_void};
use std::marker::{PhantomData, PhantomPinned};

/// `pam_handle_t` (`_pam_types.h`): opaque, only ever behind a pointer libpam gives us.
#[repr(C)]
#[derive(Debug)]
#[allow(
    unreachable_pub,
    reason = "named by the exported pam_sm_* signatures and re-exported at the crate root; the \
              test harness includes this file where nothing re-exports it"
)]
pub struct pam_handle_t {
    _private: [u8; 0],
    // Neither `Send`, `Sync` nor `Unpin`: it is libpam's, not ours to move or share.
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

// Return values (`_pam_types.h`).
/// Successful function return.
pub(crate) const PAM_SUCCESS: c_int = 0;
/// Error in service module (here: the module's arguments or config are broken).
pub(crate) const PAM_SERVICE_ERR: c_int = 3;
/// Authentication failure.
pub(crate) const PAM_AUTH_ERR: c_int = 7;
/// Conversation error.
pub(crate) const PAM_CONV_ERR: c_int = 19;
/// Ignore this module, whatever its control flag says.
pub(crate) const PAM_IGNORE: c_int = 25;

// Items for `pam_get_item` / `pam_set_item` (`_pam_types.h`).
/// The service name (`sshd`, `sudo`).
pub(crate) const PAM_SERVICE: c_int = 1;
/// The user name.
pub(crate) const PAM_USER: c_int = 2;
/// The remote host name or address (sshd sets it to the client's address).
pub(crate) const PAM_RHOST: c_int = 4;
/// The authentication token (password), readable and settable by modules only.
pub(crate) const PAM_AUTHTOK: c_int = 6;

/// Ask, and don't echo what is typed: the only prompt style the module uses.
pub(crate) const PAM_PROMPT_ECHO_OFF: c_int = 1;

#[allow(unused_imports, reason = "used by the test driver")]
pub(crate) use application::*;

/// What only the application side of a conversation needs: the test driver, which answers
/// the module's prompts the way sshd does. The module itself asks through `pam_prompt`, which
/// leaves the `pam_response` memory rules to libpam.
#[allow(
    dead_code,
    reason = "the application side is used only by the test driver, which includes this file"
)]
mod application {
    use super::*;

    // Message styles (`_pam_types.h`).
    /// Ask, and echo what is typed.
    pub(crate) const PAM_PROMPT_ECHO_ON: c_int = 2;
    /// Show an error message.
    pub(crate) const PAM_ERROR_MSG: c_int = 3;
    /// Show a message.
    pub(crate) const PAM_TEXT_INFO: c_int = 4;

    /// `struct pam_message` (`_pam_types.h`).
    #[repr(C)]
    #[derive(Debug)]
    pub(crate) struct pam_message {
        /// One of the `PAM_PROMPT_*` / `PAM_*_MSG` styles.
        pub msg_style: c_int,
        /// The text, NUL-terminated.
        pub msg: *const c_char,
    }

    /// `struct pam_response` (`_pam_types.h`). Allocated by the application with `malloc`,
    /// freed by whoever receives it.
    #[repr(C)]
    #[derive(Debug)]
    pub(crate) struct pam_response {
        /// The answer, `malloc`ed and NUL-terminated, or null.
        pub resp: *mut c_char,
        /// Unused; zero.
        pub resp_retcode: c_int,
    }

    /// The conversation function in `struct pam_conv`; `msg` is `const struct pam_message **`.
    pub(crate) type pam_conv_fn = unsafe extern "C" fn(
        num_msg: c_int,
        msg: *mut *const pam_message,
        resp: *mut *mut pam_response,
        appdata_ptr: *mut c_void,
    ) -> c_int;

    /// `struct pam_conv` (`_pam_types.h`).
    #[repr(C)]
    #[derive(Debug)]
    pub(crate) struct pam_conv {
        /// The application's conversation function.
        pub conv: Option<pam_conv_fn>,
        /// Passed back to it unchanged.
        pub appdata_ptr: *mut c_void,
    }
}

// By the runtime library's soname, not `-lpam`: the unversioned `libpam.so` that `-lpam` looks
// for comes only with libpam0g-dev, which a fresh Debian lacks, while `libpam.so.0` is on every
// system with PAM (issue 9, item 17). `+verbatim` makes rustc pass `-l:libpam.so.0`; the
// module's NEEDED entry is the same `libpam.so.0` either way.
#[link(name = "libpam.so.0", kind = "dylib", modifiers = "+verbatim")]
// The module's unit tests call a fake libpam instead (`fake_libpam.rs`), so that Miri can run
// them.
#[cfg_attr(
    test,
    allow(
        dead_code,
        reason = "unit tests call the fake libpam (fake_libpam.rs) instead"
    )
)]
extern "C" {
    /// `pam_modules.h`: the user name, asking for it through the conversation if it is not
    /// set yet. `*user` stays owned by libpam.
    pub(crate) fn pam_get_user(
        pamh: *mut pam_handle_t,
        user: *mut *const c_char,
        prompt: *const c_char,
    ) -> c_int;

    /// `_pam_types.h`: an item; `*item` stays owned by libpam.
    pub(crate) fn pam_get_item(
        pamh: *const pam_handle_t,
        item_type: c_int,
        item: *mut *const c_void,
    ) -> c_int;

    /// `_pam_types.h`: sets an item; libpam copies string items (and wipes the old value of
    /// `PAM_AUTHTOK`).
    pub(crate) fn pam_set_item(
        pamh: *mut pam_handle_t,
        item_type: c_int,
        item: *const c_void,
    ) -> c_int;

    /// `_pam_types.h`: a variable of the PAM environment (which sshd fills, e.g.
    /// `SSH_AUTH_INFO_0` with `ExposeAuthInfo yes`), or null; owned by libpam.
    pub(crate) fn pam_getenv(pamh: *mut pam_handle_t, name: *const c_char) -> *const c_char;

    /// `pam_ext.h`: one conversation round with a single message, formatted printf-style.
    /// For a prompt, `*response` receives the `malloc`ed answer, which the caller frees.
    pub(crate) fn pam_prompt(
        pamh: *mut pam_handle_t,
        style: c_int,
        response: *mut *mut c_char,
        fmt: *const c_char,
        ...
    ) -> c_int;

    /// `pam_ext.h`: syslog at facility authpriv, prefixed `MODULE(SERVICE:TYPE): `.
    pub(crate) fn pam_syslog(pamh: *const pam_handle_t, priority: c_int, fmt: *const c_char, ...);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number declared above, by its C name.
    const DECLARED: &[(&str, c_int)] = &[
        ("PAM_SUCCESS", PAM_SUCCESS),
        ("PAM_SERVICE_ERR", PAM_SERVICE_ERR),
        ("PAM_AUTH_ERR", PAM_AUTH_ERR),
        ("PAM_CONV_ERR", PAM_CONV_ERR),
        ("PAM_IGNORE", PAM_IGNORE),
        ("PAM_SERVICE", PAM_SERVICE),
        ("PAM_USER", PAM_USER),
        ("PAM_RHOST", PAM_RHOST),
        ("PAM_AUTHTOK", PAM_AUTHTOK),
        ("PAM_PROMPT_ECHO_OFF", PAM_PROMPT_ECHO_OFF),
        ("PAM_PROMPT_ECHO_ON", PAM_PROMPT_ECHO_ON),
        ("PAM_ERROR_MSG", PAM_ERROR_MSG),
        ("PAM_TEXT_INFO", PAM_TEXT_INFO),
    ];

    /// The `#define NAME NUMBER` lines of a header.
    fn defines(header: &str) -> Vec<(String, c_int)> {
        header
            .lines()
            .filter_map(|line| {
                let mut words = line.strip_prefix("#define")?.split_whitespace();
                let name = words.next()?;
                let value = words.next()?.parse().ok()?;
                Some((name.to_owned(), value))
            })
            .collect()
    }

    #[test]
    fn numbers_match_the_installed_header() {
        let path = "/usr/include/security/_pam_types.h";
        let header = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{path}: {e}; install libpam0g-dev"));
        let defined = defines(&header);
        for (name, ours) in DECLARED {
            let theirs = defined.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
            assert_eq!(theirs, Some(*ours), "{name} in {path}");
        }
    }

    #[test]
    fn struct_layouts_are_two_words() {
        // Two pointer-sized fields each (an int is padded to a pointer's alignment), as a C
        // compiler lays them out on the LP64 and ILP32 targets Linux-PAM runs on.
        let word = std::mem::size_of::<*const c_void>();
        assert_eq!(std::mem::size_of::<pam_message>(), 2 * word);
        assert_eq!(std::mem::size_of::<pam_response>(), 2 * word);
        assert_eq!(std::mem::size_of::<pam_conv>(), 2 * word);
        assert_eq!(std::mem::offset_of!(pam_message, msg), word);
        assert_eq!(std::mem::offset_of!(pam_conv, appdata_ptr), word);
    }
}
