//! The host's two push requests to the server (docs/push.md): ask for a push
//! (`POST /v1/push`, whose 409, 429, 403 and 404 are Duo's limits, not refusals of the host)
//! and wait for its outcome (`POST /v1/push/wait`, held open by the server).

use std::time::Duration;

use sshield_core::push::{Approval, PushAnswer, PushAsk, PushLimit, PushSent};
use sshield_core::Caller;
use sshield_wire::api::{
    PushCreated, PushRequest, PushState, WaitRequest, PUSH_PATH, PUSH_WAIT_PATH,
};

use super::client::{Failed, ServerClient};

/// The read timeout of a wait: the server's `max_wait` (25 s) and a margin.
pub(crate) const WAIT_READ_TIMEOUT: Duration = Duration::from_secs(35);

/// Asks the server to push a login request for `caller`.
pub(crate) fn push(client: &ServerClient, caller: &Caller, ask: &PushAsk) -> PushAnswer {
    let source = caller
        .source
        .map(|a| a.to_string())
        .or_else(|| caller.source_name.clone());
    let request = PushRequest {
        user: caller.user.name().to_owned(),
        source,
        service: caller.service.clone(),
        // The server keeps at most 1024 bytes of a command.
        command: ask.command.as_deref().map(|c| cut(c, 1024)),
        without_number: ask.without_number,
    };
    let Ok(body) = serde_json::to_vec(&request) else {
        return PushAnswer::Refused("the push request could not be written".to_owned());
    };
    // Bounded by the config's timeout, as a verification: the server answers a push request
    // at once (the notification leaves in the background).
    match client.post_with(client.short_agent(), PUSH_PATH, &body) {
        Ok(text) => match serde_json::from_str::<PushCreated>(&text) {
            Ok(created) => PushAnswer::Sent(PushSent {
                id: created.id,
                number: if ask.without_number {
                    None
                } else {
                    u8::try_from(created.number)
                        .ok()
                        .filter(|n| (10..100).contains(n))
                },
                expires_at: u64::try_from(created.expires_at).unwrap_or(0),
            })
            .checked(ask),
            Err(_) => PushAnswer::Refused(format!(
                "the server's answer is not a push: {}",
                text.chars().take(200).collect::<String>()
            )),
        },
        Err((status, Failed::Refused(what))) => match status {
            Some(409) => PushAnswer::Limited(PushLimit::Pending, what),
            Some(429) => PushAnswer::Limited(PushLimit::TooMany, what),
            Some(403) if what.contains("blocked") => PushAnswer::Limited(PushLimit::Blocked, what),
            Some(404) => PushAnswer::Limited(PushLimit::NoSuchUser, what),
            _ => PushAnswer::Refused(what),
        },
        Err((_, Failed::Unreachable(what))) => PushAnswer::Unreachable(what),
    }
}

/// One round of waiting for push `id`.
pub(crate) fn wait(client: &ServerClient, id: &str) -> Approval {
    let request = WaitRequest { id: id.to_owned() };
    let Ok(body) = serde_json::to_vec(&request) else {
        return Approval::Refused("the wait request could not be written".to_owned());
    };
    match client.post_with(client.wait_agent(), PUSH_WAIT_PATH, &body) {
        Ok(text) => match serde_json::from_str::<PushState>(&text) {
            Ok(state) if state.id == id => Approval::of_state(&state.state),
            _ => Approval::Refused(format!(
                "the server's answer is not the state of push {id:?}: {}",
                text.chars().take(200).collect::<String>()
            )),
        },
        Err((_, Failed::Refused(what))) => Approval::Refused(what),
        Err((_, Failed::Unreachable(what))) => Approval::Unreachable(what),
    }
}

trait Checked {
    fn checked(self, ask: &PushAsk) -> PushAnswer;
}

impl Checked for PushAnswer {
    /// A push with a number the server did not give (or one it gave to a push asked without)
    /// is no push the user can match: refused.
    fn checked(self, ask: &PushAsk) -> PushAnswer {
        match &self {
            PushAnswer::Sent(sent) if sent.number.is_none() && !ask.without_number => {
                PushAnswer::Refused("the server's push has no two-digit number to show".to_owned())
            }
            _ => self,
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
