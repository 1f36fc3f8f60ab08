//! A fake libpam in Rust, so that the module's pointer handling runs under Miri.
//!
//! Miri interprets Rust and cannot call into the real `libpam.so.0`, so under `cfg(test)`
//! `handle.rs` calls these functions instead of `ffi`'s: each keeps the signature of the C
//! function it stands for and the memory rules of Linux-PAM 1.5 (`libpam/pam_item.c`,
//! `pam_vprompt.c`, `pam_get_user.c`, `pam_env.c`): items are libpam's copies, lent to the
//! module; `pam_prompt` hands the application's `malloc`ed answer over to the caller and frees
//! the reply array itself. The application on the other side is the tests' own conversation
//! function (`tests/harness/conversation.rs`, the one the driver gives the real libpam), plus
//! misbehaving ones written here. Miri then reports any read out of bounds, use after free,
//! double free or leaked reply (`scripts/miri`, docs/miri.md).
//!
//! What this cannot show: that the real libpam keeps these rules (the integration tests in
//! `tests/` load the real module into the real libpam for that).
#![allow(
    unsafe_code,
    reason = "a stand-in for C: raw pointers in, raw pointers out"
)]

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;

// What `handle.rs` takes from `ffi` besides the functions.
pub(crate) use crate::ffi::{
    pam_handle_t, PAM_AUTHTOK, PAM_AUTH_ERR, PAM_CONV_ERR, PAM_PROMPT_ECHO_OFF, PAM_SUCCESS,
};

use crate::ffi::{
    self, pam_conv, pam_message, pam_response, PAM_PROMPT_ECHO_ON, PAM_RHOST, PAM_SERVICE, PAM_USER,
};

// The application's conversation function the test driver gives the real libpam.
#[path = "../tests/harness/conversation.rs"]
mod conversation;

/// `PAM_CONV` (`_pam_types.h`): the conversation item, which only libpam reads here.
const PAM_CONV: c_int = 5;
/// `PAM_BAD_ITEM` (`_pam_types.h`).
const PAM_BAD_ITEM: c_int = 29;
/// `PAM_SYSTEM_ERR` (`_pam_types.h`).
const PAM_SYSTEM_ERR: c_int = 4;

/// One transaction's state, as libpam keeps it behind a `pam_handle_t`.
#[derive(Debug)]
pub(crate) struct FakePam {
    items: HashMap<c_int, CString>,
    env: HashMap<CString, CString>,
    conv: pam_conv,
    /// Every `pam_syslog` line, with its priority.
    pub(crate) syslog: Vec<(c_int, String)>,
}

impl FakePam {
    /// A transaction whose application answers through `conv` (`pam_start`).
    pub(crate) fn new(conv: pam_conv) -> Self {
        Self {
            items: HashMap::new(),
            env: HashMap::new(),
            conv,
            syslog: Vec::new(),
        }
    }

    /// Sets a string item as the application would (`pam_set_item`).
    pub(crate) fn with_item(mut self, item: c_int, value: &[u8]) -> Self {
        self.items
            .insert(item, CString::new(value).unwrap_or_default());
        self
    }

    /// Sets a variable of the PAM environment (`pam_putenv`).
    pub(crate) fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(
            CString::new(name).unwrap_or_default(),
            CString::new(value).unwrap_or_default(),
        );
        self
    }

    /// An item as libpam holds it now.
    pub(crate) fn item(&self, item: c_int) -> Option<&CStr> {
        self.items.get(&item).map(CString::as_c_str)
    }
}

/// `raw` as the fake's state.
///
/// # Safety
///
/// `raw` must be the pointer of a live [`FakePam`] (a [`Transaction`]'s), with no other
/// reference to it in use.
unsafe fn state<'a>(raw: *const pam_handle_t) -> &'a mut FakePam {
    // SAFETY: as the caller promises.
    unsafe { &mut *raw.cast_mut().cast::<FakePam>() }
}

/// `pam_get_user` (`pam_get_user.c`): `PAM_USER` if set, else asked through the conversation
/// (echoed, "login: " by default) and kept as `PAM_USER`; `*user` is lent, not given.
pub(crate) unsafe extern "C" fn pam_get_user(
    pamh: *mut pam_handle_t,
    user: *mut *const c_char,
    prompt: *const c_char,
) -> c_int {
    if pamh.is_null() || user.is_null() {
        return PAM_SYSTEM_ERR;
    }
    // SAFETY: `user` is a valid out pointer (checked non-null; the module passes a local).
    unsafe { *user = ptr::null() };
    // SAFETY: the module passes the handle it was given, a live fake.
    if unsafe { state(pamh) }.items.contains_key(&PAM_USER) {
        // SAFETY: as above; the item lives until it is next set.
        unsafe { *user = state(pamh).items[&PAM_USER].as_ptr() };
        return PAM_SUCCESS;
    }
    let prompt = if prompt.is_null() {
        c"login: ".as_ptr()
    } else {
        prompt
    };
    let mut answer: *mut c_char = ptr::null_mut();
    // SAFETY: the handle is live; "%s" is matched by one NUL-terminated string.
    let rc = unsafe {
        pam_prompt(
            pamh,
            PAM_PROMPT_ECHO_ON,
            &mut answer,
            c"%s".as_ptr(),
            prompt,
        )
    };
    if rc != PAM_SUCCESS || answer.is_null() {
        // SAFETY: null, or the malloc'ed answer now ours.
        unsafe { libc::free(answer.cast()) };
        return if rc == PAM_SUCCESS { PAM_CONV_ERR } else { rc };
    }
    // SAFETY: the application's answer is NUL-terminated; libpam keeps a copy as the item
    // and frees the answer (`pam_get_user.c`).
    let name = unsafe { CStr::from_ptr(answer) }.to_owned();
    // SAFETY: malloc'ed by the application, handed over to us by `pam_prompt`.
    unsafe { libc::free(answer.cast()) };
    // SAFETY: the handle is live, and no other reference to it is in use.
    let fake = unsafe { state(pamh) };
    fake.items.insert(PAM_USER, name);
    // SAFETY: `user` is a valid out pointer; the item lives until it is next set.
    unsafe { *user = fake.items[&PAM_USER].as_ptr() };
    PAM_SUCCESS
}

/// `pam_get_item` (`pam_item.c`): the item, lent; null if unset. `PAM_CONV` is the
/// `struct pam_conv`.
pub(crate) unsafe extern "C" fn pam_get_item(
    pamh: *const pam_handle_t,
    item_type: c_int,
    item: *mut *const c_void,
) -> c_int {
    if pamh.is_null() || item.is_null() {
        return PAM_SYSTEM_ERR;
    }
    // SAFETY: the module passes the handle it was given, a live fake.
    let fake = unsafe { state(pamh) };
    let value: *const c_void = match item_type {
        PAM_CONV => ptr::addr_of!(fake.conv).cast(),
        PAM_SERVICE | PAM_USER | PAM_RHOST | PAM_AUTHTOK => fake
            .items
            .get(&item_type)
            .map_or(ptr::null(), |v| v.as_ptr().cast()),
        _ => return PAM_BAD_ITEM,
    };
    // SAFETY: a valid out pointer (checked non-null).
    unsafe { *item = value };
    PAM_SUCCESS
}

/// `pam_set_item` (`pam_item.c`): string items are copied (`strdup`); the old value is
/// freed, and `PAM_AUTHTOK`'s wiped first.
pub(crate) unsafe extern "C" fn pam_set_item(
    pamh: *mut pam_handle_t,
    item_type: c_int,
    item: *const c_void,
) -> c_int {
    if pamh.is_null() {
        return PAM_SYSTEM_ERR;
    }
    if !matches!(item_type, PAM_SERVICE | PAM_USER | PAM_RHOST | PAM_AUTHTOK) {
        return PAM_BAD_ITEM;
    }
    // SAFETY: the module passes the handle it was given, a live fake.
    let fake = unsafe { state(pamh) };
    let old = if item.is_null() {
        fake.items.remove(&item_type)
    } else {
        // SAFETY: string items are NUL-terminated; copied before this returns.
        let copy = unsafe { CStr::from_ptr(item.cast::<c_char>()) }.to_owned();
        fake.items.insert(item_type, copy)
    };
    if let (Some(old), PAM_AUTHTOK) = (old, item_type) {
        let mut bytes = old.into_bytes();
        bytes.fill(0);
    }
    PAM_SUCCESS
}

/// `pam_getenv` (`pam_env.c`): the value, lent; null if unset.
pub(crate) unsafe extern "C" fn pam_getenv(
    pamh: *mut pam_handle_t,
    name: *const c_char,
) -> *const c_char {
    if pamh.is_null() || name.is_null() {
        return ptr::null();
    }
    // SAFETY: the module passes the handle it was given and a NUL-terminated name.
    let (fake, name) = unsafe { (state(pamh), CStr::from_ptr(name)) };
    fake.env.get(name).map_or(ptr::null(), |v| v.as_ptr())
}

/// `pam_prompt` (`pam_vprompt.c`), for the one format the module uses, `"%s"` with one
/// argument (a C variadic function cannot be written in stable Rust; the call sites are the
/// same). One message; the reply array is freed here, its answer handed to the caller even
/// when the conversation failed, as Linux-PAM does.
pub(crate) unsafe extern "C" fn pam_prompt(
    pamh: *mut pam_handle_t,
    style: c_int,
    response: *mut *mut c_char,
    fmt: *const c_char,
    arg: *const c_char,
) -> c_int {
    if !response.is_null() {
        // SAFETY: a valid out pointer (checked non-null).
        unsafe { *response = ptr::null_mut() };
    }
    // SAFETY: the module's format is a NUL-terminated literal.
    let fmt = unsafe { CStr::from_ptr(fmt) };
    assert_eq!(fmt, c"%s", "the fake knows \"%s\" only");
    // The conversation item is copied out, so that no reference to the fake is held while
    // the application runs.
    let (conv, appdata) = {
        // SAFETY: the module passes the handle it was given, a live fake.
        let fake = unsafe { state(pamh) };
        (fake.conv.conv, fake.conv.appdata_ptr)
    };
    let Some(conv) = conv else {
        return PAM_SYSTEM_ERR;
    };
    // vasprintf: the message, in malloc'ed memory, wiped and freed after the conversation.
    // SAFETY: `arg` is the NUL-terminated string "%s" asks for.
    let arg = unsafe { CStr::from_ptr(arg) };
    let text = conversation::malloc_copy(arg);
    if text.is_null() {
        return PAM_CONV_ERR;
    }
    let message = pam_message {
        msg_style: style,
        msg: text,
    };
    let mut messages = [ptr::addr_of!(message)];
    let mut replies: *mut pam_response = ptr::null_mut();
    // SAFETY: one valid message; `replies` a valid out pointer; `appdata` is what the
    // application gave with the conversation.
    let rc = unsafe { conv(1, messages.as_mut_ptr(), &mut replies, appdata) };
    // SAFETY: `text` is our malloc'ed copy, freed once.
    unsafe {
        let len = libc::strlen(text);
        std::slice::from_raw_parts_mut(text.cast::<u8>(), len).fill(0);
        libc::free(text.cast());
    }
    if replies.is_null() {
        return rc;
    }
    // SAFETY: the application returned an array of one `pam_response`, malloc'ed; its answer
    // goes to the caller (or is freed when there is none to take it), the array is freed here.
    unsafe {
        let answer = (*replies).resp;
        if response.is_null() {
            libc::free(answer.cast());
        } else {
            *response = answer;
        }
        libc::free(replies.cast());
    }
    rc
}

/// `pam_syslog` (`pam_syslog.c`), for the format `"%s"` with one argument: kept in the fake's
/// log instead of sent.
pub(crate) unsafe extern "C" fn pam_syslog(
    pamh: *const pam_handle_t,
    priority: c_int,
    fmt: *const c_char,
    arg: *const c_char,
) {
    // SAFETY: the module's format is a NUL-terminated literal; `arg` the string it asks for.
    let (fmt, line) = unsafe { (CStr::from_ptr(fmt), CStr::from_ptr(arg)) };
    assert_eq!(fmt, c"%s", "the fake knows \"%s\" only");
    // SAFETY: the module passes the handle it was given, a live fake.
    let fake = unsafe { state(pamh) };
    fake.syslog
        .push((priority, line.to_string_lossy().into_owned()));
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::ffi::{c_char, c_int, c_void, CStr, CString};
    use std::ptr;

    use super::conversation::{converse, Conversation};
    use super::*;
    use crate::ffi::{pam_conv_fn, PAM_ERROR_MSG, PAM_IGNORE, PAM_SERVICE_ERR, PAM_TEXT_INFO};
    use crate::handle::{self, Pam, PamError};

    /// A fake transaction and the application answering it, both freed on drop.
    struct Transaction {
        fake: *mut FakePam,
        /// The driver's conversation state, when the application is [`converse`].
        conversation: *mut Conversation,
    }

    impl Transaction {
        /// An application that types `answers`, one per prompt.
        fn answering(answers: &[&[u8]]) -> Self {
            let answers: VecDeque<CString> =
                answers.iter().map(|a| CString::new(*a).unwrap()).collect();
            let conversation = Box::into_raw(Box::new(Conversation::new(answers)));
            let fake = FakePam::new(pam_conv {
                conv: Some(converse),
                appdata_ptr: conversation.cast(),
            });
            Self {
                fake: Box::into_raw(Box::new(fake)),
                conversation,
            }
        }

        /// An application whose conversation function is `conv`.
        fn misbehaving(conv: pam_conv_fn) -> Self {
            let fake = FakePam::new(pam_conv {
                conv: Some(conv),
                appdata_ptr: ptr::null_mut(),
            });
            Self {
                fake: Box::into_raw(Box::new(fake)),
                conversation: ptr::null_mut(),
            }
        }

        /// Changes the fake's state before the module runs.
        fn with(self, change: impl FnOnce(FakePam) -> FakePam) -> Self {
            // SAFETY: ours, from Box::into_raw, and not in use; put back at once.
            unsafe { self.fake.write(change(self.fake.read())) };
            self
        }

        fn handle(&self) -> *mut pam_handle_t {
            self.fake.cast()
        }

        /// The module's view, as `pam_sm_authenticate` makes it.
        fn pam(&self) -> Pam {
            // SAFETY: a live fake transaction, which outlives the `Pam` in each test.
            unsafe { Pam::from_raw(self.handle()) }.unwrap()
        }

        /// libpam's side, after the module ran.
        fn fake(&self) -> &FakePam {
            // SAFETY: live until drop; the module is not running.
            unsafe { &*self.fake }
        }

        /// Every message the application was shown.
        fn prompts(&self) -> Vec<(c_int, String)> {
            assert!(!self.conversation.is_null());
            // SAFETY: live until drop; the module is not running.
            unsafe { (*self.conversation).prompts.clone() }
        }
    }

    impl Drop for Transaction {
        fn drop(&mut self) {
            // SAFETY: both from Box::into_raw, freed once, here.
            unsafe {
                drop(Box::from_raw(self.fake));
                if !self.conversation.is_null() {
                    drop(Box::from_raw(self.conversation));
                }
            }
        }
    }

    /// `count` zeroed replies, as an application allocates them (`calloc`).
    fn replies(count: usize) -> *mut pam_response {
        // SAFETY: calloc of `count` pam_response; null only when out of memory.
        let replies = unsafe { libc::calloc(count, size_of::<pam_response>()) };
        assert!(!replies.is_null());
        replies.cast()
    }

    /// Says "success" and gives no reply array at all.
    unsafe extern "C" fn no_replies(
        _: c_int,
        _: *mut *const pam_message,
        resp: *mut *mut pam_response,
        _: *mut c_void,
    ) -> c_int {
        // SAFETY: libpam's out pointer.
        unsafe { *resp = ptr::null_mut() };
        PAM_SUCCESS
    }

    /// Says "success" with a reply whose text is null.
    unsafe extern "C" fn null_text(
        _: c_int,
        _: *mut *const pam_message,
        resp: *mut *mut pam_response,
        _: *mut c_void,
    ) -> c_int {
        // SAFETY: libpam's out pointer; the array is handed over.
        unsafe { *resp = replies(1) };
        PAM_SUCCESS
    }

    /// Fails, and hands over an answer anyway (libpam passes it on to the module).
    unsafe extern "C" fn fails_with_an_answer(
        _: c_int,
        _: *mut *const pam_message,
        resp: *mut *mut pam_response,
        _: *mut c_void,
    ) -> c_int {
        let array = replies(1);
        // SAFETY: one reply, ours; it and its malloc'ed text are handed over.
        unsafe {
            (*array).resp = super::conversation::malloc_copy(c"123456");
            *resp = array;
        }
        PAM_CONV_ERR
    }

    #[test]
    fn an_answer_is_copied_and_libpams_copy_wiped_and_freed() {
        let t = Transaction::answering(&[b"123456"]);
        let typed = t.pam().ask_secret("Verification code: ").unwrap();
        assert_eq!(typed.as_str(), "123456");
        assert_eq!(
            t.prompts(),
            [(PAM_PROMPT_ECHO_OFF, "Verification code: ".to_owned())]
        );
        // Control characters in the prompt never reach the application, nor a format.
        let t = Transaction::answering(&[b"1"]);
        t.pam().ask_secret("%n%s\ncode: ").unwrap();
        assert_eq!(t.prompts()[0].1, "%n%s?code: ");
    }

    #[test]
    fn a_huge_answer_that_is_not_utf8_is_copied_whole() {
        let mut answer = vec![b'7'; 16 * 1024];
        answer.extend_from_slice(&[0xff, 0xfe, b'9']);
        let t = Transaction::answering(&[&answer]);
        let typed = t.pam().ask_secret("code: ").unwrap();
        assert_eq!(typed.len(), 16 * 1024 + 2 * '\u{fffd}'.len_utf8() + 1);
        assert!(typed.ends_with("7\u{fffd}\u{fffd}9"));
    }

    #[test]
    fn an_application_with_no_answer_fails_the_conversation() {
        // Nothing left to type: the driver's conversation fails and frees what it made.
        let t = Transaction::answering(&[]);
        assert_eq!(
            t.pam().ask_secret("code: ").unwrap_err(),
            PamError(PAM_CONV_ERR)
        );
        // "Success", with no reply array, or a reply with no text.
        for conv in [no_replies as pam_conv_fn, null_text] {
            let t = Transaction::misbehaving(conv);
            assert_eq!(
                t.pam().ask_secret("code: ").unwrap_err(),
                PamError(PAM_CONV_ERR)
            );
        }
    }

    #[test]
    fn an_answer_given_with_a_failure_is_refused_and_freed() {
        let t = Transaction::misbehaving(fails_with_an_answer);
        assert_eq!(
            t.pam().ask_secret("code: ").unwrap_err(),
            PamError(PAM_CONV_ERR)
        );
    }

    /// The application's side (the driver's conversation function, as the real libpam calls
    /// it): one reply per message, text only for prompts, every reply freed by the receiver;
    /// when it runs out of answers half-way it frees what it made and hands over nothing.
    #[test]
    fn several_messages_get_one_reply_each_and_every_reply_is_freed() {
        let texts = [c"welcome", c"code: ", c"name: ", c"careful"];
        let styles = [
            PAM_TEXT_INFO,
            PAM_PROMPT_ECHO_OFF,
            PAM_PROMPT_ECHO_ON,
            PAM_ERROR_MSG,
        ];
        let messages: Vec<pam_message> = texts
            .iter()
            .zip(styles)
            .map(|(text, style)| pam_message {
                msg_style: style,
                msg: text.as_ptr(),
            })
            .collect();
        let mut pointers: Vec<*const pam_message> = messages.iter().map(ptr::from_ref).collect();
        // The four messages to a user who will type `answers`: the return code, the replies,
        // and what the user was shown.
        let mut ask = |answers: Vec<CString>| {
            let mut conversation = Conversation::new(answers.into());
            let mut resp: *mut pam_response = ptr::null_mut();
            // SAFETY: four valid messages, a valid out pointer, the conversation state the
            // function expects.
            let rc = unsafe {
                converse(
                    c_int::try_from(pointers.len()).unwrap(),
                    pointers.as_mut_ptr(),
                    &mut resp,
                    ptr::addr_of_mut!(conversation).cast(),
                )
            };
            (rc, resp, conversation.prompts.len())
        };

        let (rc, resp, shown) = ask(vec![
            c"123456".to_owned(),
            CString::new(vec![0xffu8; 300]).unwrap(),
        ]);
        assert_eq!(rc, PAM_SUCCESS);
        let mut answers = Vec::new();
        for i in 0..messages.len() {
            // SAFETY: `count` replies; each text null or malloc'ed, ours to free once.
            unsafe {
                let text = (*resp.add(i)).resp;
                answers.push((!text.is_null()).then(|| CStr::from_ptr(text).to_bytes().len()));
                libc::free(text.cast());
            }
        }
        // SAFETY: the array, malloc'ed by the application, ours to free once.
        unsafe { libc::free(resp.cast()) };
        assert_eq!(answers, [None, Some(6), Some(300), None]);
        assert_eq!(shown, 4);

        // One answer for two prompts.
        let (rc, resp, _) = ask(vec![c"1".to_owned()]);
        assert_eq!(rc, PAM_CONV_ERR);
        assert!(resp.is_null());
    }

    #[test]
    fn items_are_copies_that_outlive_libpams() {
        let t = Transaction::answering(&[]).with(|f| {
            f.with_item(PAM_USER, b"alice")
                .with_item(PAM_SERVICE, b"sshd")
                .with_item(PAM_RHOST, b"203.0.113.9\xff")
        });
        let pam = t.pam();
        let user = pam.text_item(PAM_USER);
        let rhost = pam.text_item(PAM_RHOST);
        // libpam frees its value when the item is set again; our copies stay.
        // SAFETY: a live handle; a NUL-terminated string, copied by libpam.
        let rc = unsafe { pam_set_item(t.handle(), PAM_USER, c"mallory".as_ptr().cast()) };
        assert_eq!(rc, PAM_SUCCESS);
        assert_eq!(user.as_deref(), Some("alice"));
        assert_eq!(rhost.as_deref(), Some("203.0.113.9\u{fffd}"));
        assert_eq!(pam.text_item(PAM_SERVICE).as_deref(), Some("sshd"));
        assert_eq!(pam.user().as_deref(), Ok("mallory"));
        assert_eq!(pam.env(c"SSH_AUTH_INFO_0"), None);
        assert!(t.prompts().is_empty(), "a set user is never asked for");
        let t = Transaction::answering(&[]).with(|f| f.with_env("SSH_AUTH_INFO_0", "publickey x"));
        assert_eq!(
            t.pam().env(c"SSH_AUTH_INFO_0").as_deref(),
            Some("publickey x")
        );
        assert_eq!(t.pam().text_item(PAM_RHOST), None);
    }

    #[test]
    fn an_unset_user_is_asked_for_and_kept_by_libpam() {
        let t = Transaction::answering(&[b"bob"]);
        assert_eq!(t.pam().user().as_deref(), Ok("bob"));
        assert_eq!(t.prompts(), [(PAM_PROMPT_ECHO_ON, "login: ".to_owned())]);
        assert_eq!(t.fake().item(PAM_USER), Some(c"bob"));
        // A user who cannot answer: no name, and nothing leaked.
        let t = Transaction::answering(&[]);
        assert_eq!(t.pam().user(), Err(PamError(PAM_CONV_ERR)));
    }

    #[test]
    fn authtok_is_set_read_back_and_replaced() {
        let t = Transaction::answering(&[]);
        let pam = t.pam();
        assert!(pam.authtok().is_none());
        pam.set_authtok("hunter2").unwrap();
        assert_eq!(pam.authtok().unwrap().as_str(), "hunter2");
        pam.set_authtok("correct horse").unwrap();
        assert_eq!(pam.authtok().unwrap().as_str(), "correct horse");
        // An inner NUL would cut the password short in C: refused, the item unchanged.
        assert_eq!(pam.set_authtok("a\0b"), Err(PamError(PAM_AUTH_ERR)));
        assert_eq!(t.fake().item(PAM_AUTHTOK), Some(c"correct horse"));
    }

    #[test]
    fn log_lines_go_through_a_format_of_their_own() {
        let t = Transaction::answering(&[]);
        t.pam().syslog(libc::LOG_ERR, "100%s done\nforged line");
        assert_eq!(
            t.fake().syslog,
            [(libc::LOG_ERR, "100%s done?forged line".to_owned())]
        );
    }

    #[test]
    fn module_arguments_are_borrowed_and_nulls_skipped() {
        let argv: [*const c_char; 3] = [c"debug".as_ptr(), ptr::null(), c"config=/x".as_ptr()];
        // SAFETY: three entries, each null or a NUL-terminated literal.
        let args = unsafe { handle::args(3, argv.as_ptr()) };
        assert_eq!(args, [c"debug", c"config=/x"]);
        // SAFETY: no entries are read for these.
        unsafe {
            assert!(handle::args(0, argv.as_ptr()).is_empty());
            assert!(handle::args(-1, argv.as_ptr()).is_empty());
            assert!(handle::args(3, ptr::null()).is_empty());
        }
    }

    /// The exported functions as libpam calls them, where they read nothing but the handle.
    #[test]
    fn the_entry_points_refuse_a_null_handle_and_leave_credentials_and_accounts_alone() {
        let argv = [c"debug".as_ptr()];
        // SAFETY: a null handle is refused before anything is read.
        let rc = unsafe { crate::pam_sm_authenticate(ptr::null_mut(), 0, 1, argv.as_ptr()) };
        assert_eq!(rc, PAM_AUTH_ERR);
        let t = Transaction::answering(&[]);
        // SAFETY: these read nothing.
        unsafe {
            assert_eq!(
                crate::pam_sm_setcred(t.handle(), 0, 0, ptr::null()),
                PAM_SUCCESS
            );
            assert_eq!(
                crate::pam_sm_acct_mgmt(t.handle(), 0, 0, ptr::null()),
                PAM_IGNORE
            );
        }
    }

    /// `pam_sm_authenticate` as libpam calls it, up to where the engine would take over. Not
    /// under Miri: the user's account is looked up in the name service (`getpwnam_r`, through
    /// NSS's shared objects), a foreign function Miri cannot run.
    #[cfg(not(miri))]
    #[test]
    fn authenticate_reads_only_what_libpam_lends_and_fails_closed() {
        let argv = [c"no_such_option".as_ptr()];
        let t = Transaction::answering(&[]).with(|f| f.with_item(PAM_USER, b"alice"));
        // SAFETY: a live handle and one argument, as libpam passes them.
        let rc = unsafe { crate::pam_sm_authenticate(t.handle(), 0, 1, argv.as_ptr()) };
        assert_eq!(rc, PAM_SERVICE_ERR);
        let lines = &t.fake().syslog;
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].1.contains("no_such_option"), "{lines:?}");

        // A line for key logins only, after a password: ignored, having read the user (asked
        // for) and sshd's SSH_AUTH_INFO_0.
        let t = Transaction::answering(&[b"alice"])
            .with(|f| f.with_env("SSH_AUTH_INFO_0", "password\n"));
        let argv = [c"after_publickey".as_ptr(), c"debug".as_ptr()];
        // SAFETY: as above.
        let rc = unsafe { crate::pam_sm_authenticate(t.handle(), 0, 2, argv.as_ptr()) };
        assert_eq!(rc, PAM_IGNORE);
        assert_eq!(t.prompts(), [(PAM_PROMPT_ECHO_ON, "login: ".to_owned())]);
        assert!(t.fake().syslog.len() >= 2, "{:?}", t.fake().syslog);
    }
}
