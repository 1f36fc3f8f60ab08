//! The software passkey (sshield_e2e::passkey) and the server requests around it.

use serde_json::{json, Value};

pub(crate) use sshield_e2e::passkey::SoftPasskey;

/// Spends the enrollment link `token` on `server` registering `passkey` (begin, the passkey's
/// answer, finish): the new device's bearer token and its id.
pub(crate) fn enroll_with(
    server: &crate::support::server::Server,
    token: &str,
    passkey: &mut SoftPasskey,
) -> (String, String) {
    let (status, options) =
        server.post_json("/v1/enroll/passkey", &json!({"token": token}).to_string());
    assert_eq!(status, 200, "{options}");
    let options: Value = serde_json::from_str(&options).expect("JSON");
    let body = json!({"token": token, "name": "phone", "passkey": passkey.register(&options)});
    let (status, enrolled) = server.post_json("/v1/enroll", &body.to_string());
    assert_eq!(status, 201, "{enrolled}");
    let enrolled: Value = serde_json::from_str(&enrolled).expect("JSON");
    assert_eq!(enrolled["passkey"], true, "{enrolled}");
    let field = |name: &str| enrolled[name].as_str().expect(name).to_owned();
    (field("token"), field("device"))
}

/// `POST /v1/me/approvals/{id}/challenge` from the device with `token`: (status, answer).
pub(crate) fn challenge(
    server: &crate::support::server::Server,
    token: &str,
    id: &str,
) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, body) = server.request(
        "POST",
        &format!("/v1/me/approvals/{id}/challenge"),
        &[("authorization", &auth)],
        b"",
    );
    (status, serde_json::from_str(&body).expect("JSON"))
}
