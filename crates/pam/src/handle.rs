//! A safe view of the `pam_handle_t` libpam passes to one `pam_sm_*` call.
//!
//! Everything the module asks of libpam goes through [`Pam`]; the rest of the crate is safe
//! Rust. Strings libpam owns are copied out at once, so no pointer outlives the call that
//! returned it, and what the user typed is copied into wiped memory and then wiped and freed
//! in libpam's buffer too.
#![allow(
    unsafe_code,
    reason = "the calls into libpam, each with its SAFETY comment"
)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::{self, NonNull};

use zeroize::{Zeroize, Zeroizing};

#[cfg(not(test))]
use crate::ffi;
// Unit tests (and Miri, which cannot call into the real libpam) run against a fake libpam
// with the same signatures and memory rules.
#[cfg(test)]
use crate::fake_libpam as ffi;

/// The handle of the PAM transaction in progress.
#[derive(Debug)]
pub(crate) struct Pam {
    raw: NonNull<ffi::pam_handle_t>,
}

/// A PAM error code (`PAM_*`) returned by a libpam call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PamError(pub c_int);

impl Pam {
    /// Wraps the handle of the current call; `None` if libpam passed null.
    ///
    /// # Safety
    ///
    /// `raw` must be null or the handle libpam passed to the `pam_sm_*` function now running,
    /// and the returned `Pam` must not outlive that call.
    pub(crate) unsafe fn from_raw(raw: *mut ffi::pam_handle_t) -> Option<Self> {
        NonNull::new(raw).map(|raw| Self { raw })
    }

    fn as_ptr(&self) -> *mut ffi::pam_handle_t {
        self.raw.as_ptr()
    }

    /// The user name, asking for it if the application has not set it (sshd always has).
    pub(crate) fn user(&self) -> Result<String, PamError> {
        let mut user: *const c_char = ptr::null();
        // SAFETY: the handle is valid for this call (`from_raw`); `user` is a valid out
        // pointer; a null prompt asks libpam for its default.
        let rc = unsafe { ffi::pam_get_user(self.as_ptr(), &mut user, ptr::null()) };
        if rc != ffi::PAM_SUCCESS {
            return Err(PamError(rc));
        }
        // SAFETY: on success libpam set `user` to null or to a NUL-terminated string it owns,
        // which lives at least until the next call that changes PAM_USER; we copy it now.
        unsafe { copy_text(user) }.ok_or(PamError(ffi::PAM_AUTH_ERR))
    }

    /// A string item (`PAM_SERVICE`, `PAM_USER`, `PAM_RHOST`), if set. Never prompts.
    pub(crate) fn text_item(&self, item: c_int) -> Option<String> {
        // SAFETY: the handle is valid for this call; the pointer is owned by libpam and
        // copied before anything else touches the handle.
        unsafe { copy_text(self.raw_item(item)?.as_ptr().cast()) }
    }

    /// `PAM_AUTHTOK`, as set by an earlier module in the stack, in wiped memory.
    pub(crate) fn authtok(&self) -> Option<Zeroizing<String>> {
        let raw = self.raw_item(ffi::PAM_AUTHTOK)?.as_ptr().cast::<c_char>();
        // SAFETY: PAM_AUTHTOK is a NUL-terminated string owned by libpam, valid until the
        // item is next set; we copy it before returning.
        let bytes = unsafe { CStr::from_ptr(raw) }.to_bytes();
        Some(Zeroizing::new(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// The raw pointer of item `item`, or `None` if it is unset.
    fn raw_item(&self, item: c_int) -> Option<NonNull<c_void>> {
        let mut value: *const c_void = ptr::null();
        // SAFETY: the handle is valid for this call; `value` is a valid out pointer; the
        // items we ask for are all `const char *` or unset.
        let rc = unsafe { ffi::pam_get_item(self.as_ptr(), item, &mut value) };
        if rc != ffi::PAM_SUCCESS {
            return None;
        }
        NonNull::new(value.cast_mut())
    }

    /// Sets `PAM_AUTHTOK` for the modules after this one (`forward_pass`). libpam keeps its
    /// own copy; ours is wiped when this returns.
    pub(crate) fn set_authtok(&self, password: &str) -> Result<(), PamError> {
        if password.as_bytes().contains(&0) {
            // Cannot happen for text that came through the conversation, which is a C string.
            return Err(PamError(ffi::PAM_AUTH_ERR));
        }
        let mut c_string = Zeroizing::new(Vec::with_capacity(password.len() + 1));
        c_string.extend_from_slice(password.as_bytes());
        c_string.push(0);
        // SAFETY: the handle is valid for this call; `c_string` is NUL-terminated without an
        // inner NUL, and libpam copies it (strdup) before returning, so it may be freed after.
        let rc =
            unsafe { ffi::pam_set_item(self.as_ptr(), ffi::PAM_AUTHTOK, c_string.as_ptr().cast()) };
        if rc == ffi::PAM_SUCCESS {
            Ok(())
        } else {
            Err(PamError(rc))
        }
    }

    /// A variable of the PAM environment, such as `SSH_AUTH_INFO_0`.
    pub(crate) fn env(&self, name: &CStr) -> Option<String> {
        // SAFETY: the handle is valid for this call and `name` is NUL-terminated. The result
        // is null or a string owned by libpam, copied at once.
        unsafe { copy_text(ffi::pam_getenv(self.as_ptr(), name.as_ptr())) }
    }

    /// Asks the user `prompt` without echo and returns the answer in wiped memory. libpam's
    /// copy of the answer is wiped and freed here.
    pub(crate) fn ask_secret(&self, prompt: &str) -> Result<Zeroizing<String>, PamError> {
        let prompt = c_text(prompt);
        let mut answer: *mut c_char = ptr::null_mut();
        // SAFETY: the handle is valid for this call; the format is a literal "%s" matched by
        // one NUL-terminated string argument, so user-chosen prompt text is never parsed as a
        // format; `answer` is a valid out pointer.
        let rc = unsafe {
            ffi::pam_prompt(
                self.as_ptr(),
                ffi::PAM_PROMPT_ECHO_OFF,
                &mut answer,
                c"%s".as_ptr(),
                prompt.as_ptr(),
            )
        };
        let Some(answer) = NonNull::new(answer) else {
            // An application that answers nothing is a failed conversation.
            return Err(PamError(if rc == ffi::PAM_SUCCESS {
                ffi::PAM_CONV_ERR
            } else {
                rc
            }));
        };
        // SAFETY: pam_prompt hands over a NUL-terminated string the application allocated
        // with malloc; it is ours to read, wipe and free, exactly once, here.
        let typed = unsafe {
            let bytes = CStr::from_ptr(answer.as_ptr()).to_bytes();
            let len = bytes.len();
            let typed = Zeroizing::new(String::from_utf8_lossy(bytes).into_owned());
            std::slice::from_raw_parts_mut(answer.as_ptr().cast::<u8>(), len).zeroize();
            libc::free(answer.as_ptr().cast());
            typed
        };
        if rc == ffi::PAM_SUCCESS {
            Ok(typed)
        } else {
            Err(PamError(rc))
        }
    }

    /// Logs `line` to syslog, facility authpriv, as `pam_sshield(SERVICE:auth): LINE`.
    pub(crate) fn syslog(&self, priority: c_int, line: &str) {
        let line = c_text(line);
        // SAFETY: the handle is valid for this call; the format is a literal "%s" matched by
        // one NUL-terminated string argument.
        unsafe { ffi::pam_syslog(self.as_ptr(), priority, c"%s".as_ptr(), line.as_ptr()) }
    }
}

/// Copies a string libpam owns; `None` for null.
///
/// # Safety
///
/// `raw` must be null or point to a NUL-terminated string valid for the duration of the call.
unsafe fn copy_text(raw: *const c_char) -> Option<String> {
    if raw.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated, as the caller promises.
    let bytes = unsafe { CStr::from_ptr(raw) }.to_bytes();
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// `text` as a C string for prompts and logs: control characters (a newline would start a
/// forged log line) and NUL become `?`. The engine's log lines are already escaped; this also
/// covers the module's own messages.
fn c_text(text: &str) -> std::ffi::CString {
    let bytes: Vec<u8> = text
        .bytes()
        .map(|b| if b.is_ascii_control() { b'?' } else { b })
        .collect();
    // No NUL is left, so this cannot fail; an empty string is the harmless fallback.
    std::ffi::CString::new(bytes).unwrap_or_default()
}

/// The module arguments, borrowed from libpam for the duration of the call.
///
/// # Safety
///
/// `argv` must point to `argc` valid NUL-terminated strings (or `argc` must be 0), alive for
/// `'a`, as libpam guarantees for the call it passes them to.
pub(crate) unsafe fn args<'a>(argc: c_int, argv: *const *const c_char) -> Vec<&'a CStr> {
    let count = usize::try_from(argc).unwrap_or(0);
    if count == 0 || argv.is_null() {
        return Vec::new();
    }
    // SAFETY: `argv` points to `argc` pointers, as the caller promises.
    let pointers = unsafe { std::slice::from_raw_parts(argv, count) };
    pointers
        .iter()
        .filter(|p| !p.is_null())
        // SAFETY: each non-null entry is a NUL-terminated string alive for `'a`.
        .map(|&p| unsafe { CStr::from_ptr(p) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_reach_syslog() {
        assert_eq!(c_text("a\nb\0c\x1b").as_bytes(), b"a?b?c?");
        assert_eq!(
            c_text("Verification code: ").as_bytes(),
            b"Verification code: "
        );
    }
}
