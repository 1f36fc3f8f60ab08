//! The JSON bodies of the host API (docs/openapi.json is their schema; the server's
//! tests/openapi.rs checks the two agree).

use serde::{Deserialize, Serialize};

/// The path a host joins at.
pub const JOIN_PATH: &str = "/v1/join";
/// The path a host asks for a verification at.
pub const VERIFY_PATH: &str = "/v1/verify";

/// `POST /v1/verify`: is this code good for this user?
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The login name.
    pub user: String,
    /// What the user typed.
    pub code: String,
    /// The client's address, as the host saw it.
    #[serde(default)]
    pub source: Option<String>,
    /// The PAM service (`sshd`, `sudo`...).
    pub service: String,
    /// `code` is the end of what the user typed at a one-field prompt, a password with the code
    /// after it (`forward_pass`): its trailing digits, at most 8. The server takes the code off
    /// their end by the lengths of the user's codes, tries each such split, and counts at most
    /// one failure; `code_digits` in the answer says which split it was.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub split: bool,
}

/// The answer to a verification.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyResponse {
    /// `allowed` or `denied`.
    pub outcome: String,
    /// How the user passed: `totp`, `hotp` or `backup`.
    pub method: Option<String>,
    /// Why not: `wrong-code`, `replayed`, `not-enrolled`... (the same words as a host's log).
    pub reason: Option<String>,
    /// On a denial: how long the host waits before telling the user, in milliseconds (the rate
    /// limit's delay for this source, counted across the fleet). The server answers at once and
    /// the host does the waiting: a server that slept before answering would look unreachable to
    /// a host whose read timeout is shorter, and `failmode` would decide a wrong code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// For a `split` request: how many of `code`'s last characters were the code (the split
    /// that passed, else the likeliest); the characters before them end the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_digits: Option<u8>,
}

/// `POST /v1/join`: a host registers its public key with a one-time token.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The token `sshield-server host add NAME` printed.
    pub token: String,
    /// The host's name, as given to `host add`.
    pub name: String,
    /// Its ed25519 public key, base64.
    pub public_key: String,
}

/// The answer to a join.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JoinResponse {
    /// The name the host is known by.
    pub host: String,
}

/// The body of every error the server answers with.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// What went wrong and what to do, for the admin.
    pub error: String,
}

/// The path a host asks for a push at.
pub const PUSH_PATH: &str = "/v1/push";
/// The path a host waits for a push's outcome at.
pub const PUSH_WAIT_PATH: &str = "/v1/push/wait";

/// `POST /v1/push`: a host asks the user to approve a login on their phone.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The login name.
    pub user: String,
    /// The client's address, as the host saw it.
    #[serde(default)]
    pub source: Option<String>,
    /// The PAM service or front end.
    pub service: String,
    /// The command of a ForceCommand or non-interactive login.
    #[serde(default)]
    pub command: Option<String>,
    /// No number to match (a client with no terminal to show one, where the host's admin
    /// allows it): the phone approves by reading the host, source and command.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub without_number: bool,
}

/// The answer: the request's id and the number the SSH prompt must show.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushCreated {
    /// The request's id, for `/v1/push/wait`.
    pub id: String,
    /// The number to show; the user picks it on the phone. 0 for a push without a number.
    pub number: i64,
    /// When it stops being approvable (Unix seconds).
    pub expires_at: i64,
    /// How many of the user's devices and webhooks the notification was handed to.
    pub notified: usize,
}

/// `POST /v1/push/wait`: the host waits for the outcome of its request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitRequest {
    /// The request's id.
    pub id: String,
}

/// Where a request stands.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushState {
    /// The request's id.
    pub id: String,
    /// `pending` (ask again), `approved`, `denied`, `reported` or `expired`.
    pub state: String,
}
