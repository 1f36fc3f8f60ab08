//! The application's side of a PAM conversation, as sshd's: answers prompts from a queue.
//!
//! Shared by the test driver (`driver.rs`, against the real libpam) and the module's unit tests
//! (`src/fake_libpam.rs`, under Miri, against a fake libpam written in Rust), so the memory
//! rules of `struct pam_response` are played by one piece of code on both sides. The includer
//! provides `ffi` (the module's `src/ffi.rs`) in its parent module.
#![allow(
    unsafe_code,
    reason = "the C side of a conversation: malloc'ed replies handed over to libpam"
)]

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use super::ffi::{self, pam_message, pam_response};

/// Answers the module's prompts: `answers` in order, one per prompt; every message seen, by
/// style and text, in `prompts`.
#[derive(Debug)]
pub struct Conversation {
    /// What the user types, one per prompt.
    pub answers: VecDeque<CString>,
    /// Every message shown or asked, in order.
    pub prompts: Vec<(c_int, String)>,
}

impl Conversation {
    /// A user who will type `answers`.
    pub fn new(answers: VecDeque<CString>) -> Self {
        Self {
            answers,
            prompts: Vec::new(),
        }
    }
}

/// `text` in memory from `malloc`, NUL-terminated, for the receiver to `free`: what `strdup`
/// does (written out because Miri runs `malloc` and `free` but not `strdup`). Null if out of
/// memory.
pub fn malloc_copy(text: &CStr) -> *mut c_char {
    let bytes = text.to_bytes_with_nul();
    // SAFETY: a fresh allocation of `bytes.len()` bytes, or null.
    let copy = unsafe { libc::malloc(bytes.len()) }.cast::<u8>();
    if !copy.is_null() {
        // SAFETY: `copy` has room for `bytes.len()` bytes and does not overlap `text`.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len()) };
    }
    copy.cast()
}

/// The conversation function libpam calls for the module's prompts.
///
/// # Safety
///
/// Called by libpam with `num_msg` messages (Linux-PAM's layout: an array of pointers) and
/// the `appdata_ptr` given to `pam_start_confdir`, which points to a live [`Conversation`].
pub unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata_ptr: *mut c_void,
) -> c_int {
    let answered = catch_unwind(AssertUnwindSafe(|| {
        let count = usize::try_from(num_msg).unwrap_or(0);
        // SAFETY: `appdata_ptr` is the `Conversation` passed to pam_start_confdir, and libpam
        // calls the conversation from one thread at a time.
        let conversation = unsafe { &mut *appdata_ptr.cast::<Conversation>() };
        // SAFETY: calloc of `count` responses; all null until filled; freed by the module.
        let replies =
            unsafe { libc::calloc(count.max(1), size_of::<pam_response>()) }.cast::<pam_response>();
        assert!(!replies.is_null(), "out of memory");
        for i in 0..count {
            // SAFETY: libpam passes `num_msg` valid message pointers.
            let message = unsafe { &**msg.add(i) };
            // SAFETY: each message text is a NUL-terminated string.
            let text = unsafe { CStr::from_ptr(message.msg) }
                .to_string_lossy()
                .into_owned();
            conversation.prompts.push((message.msg_style, text));
            if message.msg_style == ffi::PAM_PROMPT_ECHO_OFF
                || message.msg_style == ffi::PAM_PROMPT_ECHO_ON
            {
                let Some(answer) = conversation.answers.pop_front() else {
                    // A client with nothing to say: free what was given so far and fail.
                    for j in 0..i {
                        // SAFETY: entries before `i` are ours, malloc'ed or null.
                        unsafe { libc::free((*replies.add(j)).resp.cast()) };
                    }
                    // SAFETY: allocated above.
                    unsafe { libc::free(replies.cast()) };
                    return ffi::PAM_CONV_ERR;
                };
                let copy = malloc_copy(&answer);
                assert!(!copy.is_null(), "out of memory");
                // SAFETY: `i < count`.
                unsafe { (*replies.add(i)).resp = copy };
            }
        }
        // SAFETY: `resp` is libpam's out pointer; the replies now belong to the caller.
        unsafe { *resp = replies };
        ffi::PAM_SUCCESS
    }));
    answered.unwrap_or(ffi::PAM_CONV_ERR)
}
