//! `pam_sshield.so`: the PAM module that asks for sshield's second factor.
//!
//! A thin C ABI shell over core's login conversation ([`sshield_core::Login`]): every decision,
//! try, log line and severity is core's. The map:
//!
//! - the `pam_sm_*` functions below: the three symbols the library exports (`exports.map`,
//!   checked by `tests/exports.rs`). Each catches panics and fails closed.
//! - `ffi`: Linux-PAM's C declarations, by hand, checked against the installed headers.
//! - `handle`: the safe wrapper over the `pam_handle_t` of one call. With the exports, the
//!   only code allowed `unsafe` (the crate denies it; these two opt in, and the tests' fake).
//! - `fake_libpam` (unit tests only): libpam's functions in Rust, with its memory rules, which
//!   `handle` calls under `cfg(test)` so that Miri can check it (docs/miri.md).
//! - `args`: the module arguments (`config=`, `debug`, `use_first_pass`, `try_first_pass`,
//!   `forward_pass`, `after_publickey`); an unknown one denies every login (`PAM_SERVICE_ERR`).
//! - `authenticate`: a loop over the login's steps doing PAM's I/O, in safe Rust.
//! - `logging`: core's log lines to syslog (authpriv) and the config's `log_file`.
//!
//! Failing closed means: `PAM_SERVICE_ERR` for broken arguments or config (the admin must fix
//! something; the syslog line says what), `PAM_AUTH_ERR` for everything else that is not an
//! explicit allow from the engine, including a panic. The module never returns
//! `PAM_USER_UNKNOWN` from authentication: a stack with `[user_unknown=ignore]` would then skip
//! the second factor. It returns `PAM_IGNORE` in one case only, which the admin asks for:
//! with `after_publickey`, when sshd's `SSH_AUTH_INFO_0` does not show that a public key came
//! first, so that the lines after it (the password, then pam_sshield again) run instead
//! (docs/pam.md, "a key or a password, then a code"). Without that argument, a stack with
//! `[ignore=ignore]` cannot skip the second factor through this module.
//!
//! # In a PAM stack
//!
//! ```text
//! # Password, then a code (two prompts): after the password modules.
//! @include common-auth
//! auth required pam_sshield.so
//!
//! # Key, then a code (sshd: AuthenticationMethods publickey,keyboard-interactive:pam):
//! # the module alone.
//! auth required pam_sshield.so
//!
//! # One prompt, "Password & verification code: ", for clients that show only one: before
//! # pam_unix, which gets the password part in PAM_AUTHTOK. try_first_pass lets pam_unix ask
//! # for the password itself when pam_sshield asked nothing (an exempt user or network).
//! auth requisite pam_sshield.so forward_pass
//! auth required  pam_unix.so try_first_pass
//!
//! # The code from an earlier module's prompt; asking again if that was no good code.
//! auth required pam_sshield.so try_first_pass      # or use_first_pass: never ask
//! ```
//!
//! `config=/path/sshield.toml` points at another config; `debug` logs each step (never a code,
//! a password or a key). The prompt text is the config's `prompt`. Listing the module in an
//! `account` stack does nothing (`PAM_IGNORE`); lockout happens when the code is checked.
#![deny(unsafe_op_in_unsafe_fn)]

// A panic that cannot unwind cannot be caught, and would abort sshd's worker mid-login.
#[cfg(panic = "abort")]
compile_error!(
    "pam_sshield must be built with panic = \"unwind\" to catch panics at the C boundary"
);

mod args;
mod authenticate;
#[cfg(test)]
mod fake_libpam;
mod ffi;
mod handle;

/// The opaque handle libpam passes to the `pam_sm_*` functions below (their signatures name it).
pub use ffi::pam_handle_t;
mod logging;

use std::ffi::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};

use handle::Pam;

/// The authentication entry point: asks for and checks the second factor.
///
/// # Safety
///
/// Called by libpam only: `pamh` is the transaction's handle and `argv` holds `argc` argument
/// strings, all valid for the duration of the call.
#[no_mangle]
#[allow(unsafe_code, reason = "an exported C symbol")]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut ffi::pam_handle_t,
    _flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: libpam passes the handle of the transaction this call belongs to, and `pam`
    // does not outlive the call.
    let Some(pam) = (unsafe { Pam::from_raw(pamh) }) else {
        return ffi::PAM_AUTH_ERR;
    };
    fail_closed(Some(&pam), ffi::PAM_AUTH_ERR, || {
        // SAFETY: libpam passes `argc` NUL-terminated arguments that outlive this call.
        let args = unsafe { handle::args(argc, argv) };
        authenticate::authenticate(&pam, &args)
    })
}

/// Credentials: the second factor sets none, so there is nothing to do. It must still
/// succeed, or `auth` stacks that call `pam_setcred` (sshd, login) would fail.
///
/// # Safety
///
/// Called by libpam only, as [`pam_sm_authenticate`].
#[no_mangle]
#[allow(unsafe_code, reason = "an exported C symbol")]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut ffi::pam_handle_t,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    fail_closed(None, ffi::PAM_AUTH_ERR, || ffi::PAM_SUCCESS)
}

/// Account management: lockout is enforced where the code is checked, so this module has
/// nothing to add to an `account` stack and asks to be ignored there.
///
/// # Safety
///
/// Called by libpam only, as [`pam_sm_authenticate`].
#[no_mangle]
#[allow(unsafe_code, reason = "an exported C symbol")]
pub unsafe extern "C" fn pam_sm_acct_mgmt(
    _pamh: *mut ffi::pam_handle_t,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    fail_closed(None, ffi::PAM_AUTH_ERR, || ffi::PAM_IGNORE)
}

/// Runs `body`, turning a panic into `on_panic` (and a log line, when there is a handle to log
/// through): unwinding into C is undefined behaviour, and a crashed module must deny, never
/// allow.
fn fail_closed(pam: Option<&Pam>, on_panic: c_int, body: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(rc) => rc,
        Err(_) => {
            if let Some(pam) = pam {
                // Logging must not unwind either; if it panics too, the denial stands.
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    pam.syslog(
                        libc::LOG_CRIT,
                        "internal error (a bug in pam_sshield; please report it): login denied",
                    );
                }));
            }
            on_panic
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_fails_closed_with_the_given_code() {
        let rc = fail_closed(None, ffi::PAM_AUTH_ERR, || panic!("a bug"));
        assert_eq!(rc, ffi::PAM_AUTH_ERR);
        let rc = fail_closed(None, ffi::PAM_SERVICE_ERR, || {
            let mut bytes = [0u8; 4];
            bytes[usize::from(bytes[0]) + 4] = 1; // an out-of-bounds index
            c_int::from(bytes[0])
        });
        assert_eq!(rc, ffi::PAM_SERVICE_ERR);
        assert_eq!(fail_closed(None, ffi::PAM_AUTH_ERR, || ffi::PAM_SUCCESS), 0);
    }
}
