//! Passkeys for Approve (WebAuthn, user verification required), with webauthn-rs.
//!
//! - **Registration** happens when a phone enrolls by link: `POST /v1/enroll/passkey` with the
//!   link's token begins it (the link is checked, not spent), `POST /v1/enroll` with the
//!   browser's answer finishes it and spends the link. The link authorises one registration.
//! - **Approve** needs a fresh assertion bound to that request: `POST
//!   /v1/me/approvals/{id}/challenge` makes a challenge for this request and this device only,
//!   stored server-side until the request expires (at most two minutes), and taken by the one
//!   decision that uses it. Deny and "This wasn't me" need only the device's sign-in.
//! - The relying party is the server's `public_url`: its host is the RP ID, its origin the
//!   only origin accepted. Browsers refuse WebAuthn on an IP address, so a server without a
//!   `public_url` naming a host has no passkeys, and says so.

use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use data_encoding::BASE64URL_NOPAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid,
    Webauthn, WebauthnBuilder,
};

use super::approval::token_hash;
use crate::api::{parse_json, ApiError, App};
use crate::records::unix;
use crate::storage::{DeviceRow, PasskeyStorage, PushStorage};
use sshield_core::UnixTime;

/// The longest a challenge waits for its answer, whatever the request's or link's expiry.
const CEREMONY_TTL: i64 = 120;

/// This server as a WebAuthn relying party, if its `public_url` allows one.
pub struct RelyingParty {
    webauthn: Result<Webauthn, String>,
    origin: String,
}

impl fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelyingParty")
            .field("origin", &self.origin)
            .field("passkeys", &self.webauthn.is_ok())
            .finish()
    }
}

impl RelyingParty {
    /// The relying party for `public_url`: its host is the RP ID, its origin the one allowed.
    pub fn new(public_url: &str) -> Self {
        let url = Url::parse(public_url);
        let origin = url
            .as_ref()
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        let webauthn = url
            .map_err(|e| format!("push.public_url {public_url:?} is not a URL: {e}"))
            .and_then(|url| {
                let host = url.domain().map(str::to_owned).ok_or_else(|| {
                    format!(
                        "push.public_url {public_url:?} names no host (browsers allow passkeys \
                         for a host name, never an IP address); set it to the https:// name \
                         phones reach this server by"
                    )
                })?;
                WebauthnBuilder::new(&host, &url)
                    .and_then(|b| b.rp_name("sshield").build())
                    .map_err(|e| format!("passkeys for {public_url:?}: {e}"))
            });
        Self { webauthn, origin }
    }

    /// The origin pages of this server are served from (`https://sshield.example`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Why this server has no passkeys, if it has none.
    pub fn unavailable(&self) -> Option<&str> {
        self.webauthn.as_ref().err().map(String::as_str)
    }

    fn webauthn(&self) -> Result<&Webauthn, ApiError> {
        self.webauthn.as_ref().map_err(|why| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("this server has no passkeys: {why}"),
        })
    }
}

fn refuse(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

/// Refuses a state-changing request that a browser says comes from another site (CSRF):
/// `Sec-Fetch-Site` other than `same-origin` or `none`, or an `Origin` other than this
/// server's. Requests without either header (hosts, command-line clients) pass: the bearer
/// token or link token they must carry is what a forged cross-site request lacks.
pub(crate) fn same_origin(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("?"));
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("?"));
    let expected = app.push.passkeys.origin();
    let cross_site = site.is_some_and(|s| s != "same-origin" && s != "none");
    let other_origin = origin.is_some_and(|o| o != expected);
    if cross_site || other_origin {
        tracing::warn!(origin = ?origin, fetch_site = ?site,
            "push: a request from another site was refused (CSRF)");
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "this request comes from another site (Origin {}, Sec-Fetch-Site {}); only \
                 this server's own pages ({expected}) may send it",
                origin.unwrap_or("absent"),
                site.unwrap_or("absent")
            ),
        ));
    }
    Ok(())
}

/// The WebAuthn user handle of `user`: stable, and naming no one (a hash of the name).
fn user_handle(user: &str) -> Uuid {
    let digest = Sha256::digest(format!("sshield user {user}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

fn enroll_key(link_hash: &[u8]) -> String {
    format!("enroll:{}", BASE64URL_NOPAD.encode(link_hash))
}

fn approve_key(request: &str, device: &str) -> String {
    format!("approve:{request}:{device}")
}

fn stored<T: serde::Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value)
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding: {e}")))
}

/// `POST /v1/enroll/passkey`: begins registering a passkey with an enrollment link.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyBegin {
    /// The token from the link (its `#` fragment).
    pub token: String,
}

pub(crate) async fn enroll_begin_handler(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CreationChallengeResponse>, ApiError> {
    let body = body?;
    same_origin(&app, &headers)?;
    let request: PasskeyBegin = parse_json(&headers, &body)?;
    let now = unix(UnixTime::now());
    let hash = token_hash(&request.token);
    let Some((user, link_expires)) = app.store.peek_enroll_link(&hash, now).await? else {
        return Err(super::approval::link_refused());
    };
    let webauthn = app.push.passkeys.webauthn()?;
    // Every passkey the user has is excluded: one authenticator registers once per user.
    let exclude: Vec<_> = app
        .store
        .passkeys_of(&user)
        .await?
        .iter()
        .filter_map(|p| serde_json::from_str::<Passkey>(&p.passkey).ok())
        .map(|p| p.cred_id().clone())
        .collect();
    let (options, state) = webauthn
        .start_passkey_registration(user_handle(&user), &user, &user, Some(exclude))
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("passkeys: {e}")))?;
    let expires = link_expires.min(now + CEREMONY_TTL);
    app.store
        .put_ceremony(&enroll_key(&hash), &user, &stored(&state)?, expires, now)
        .await?;
    Ok(Json(options))
}

/// Finishes the registration begun with the link whose token hashes to `link_hash`: the
/// passkey, as stored, and its credential id. Refused (403) if no registration was begun
/// with that link, it expired, was finished already, or the browser's answer does not verify.
pub(crate) async fn finish_registration(
    app: &App,
    link_hash: &[u8],
    credential: &RegisterPublicKeyCredential,
    now: i64,
) -> Result<(String, String), ApiError> {
    let webauthn = app.push.passkeys.webauthn()?;
    let Some((user, state)) = app.store.take_ceremony(&enroll_key(link_hash), now).await? else {
        tracing::warn!("push: a passkey registration without a challenge was refused");
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "no passkey registration is waiting for this link (none begun, expired, or \
             finished already); begin again with POST /v1/enroll/passkey",
        ));
    };
    let state: PasskeyRegistration = serde_json::from_str(&state).map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored state: {e}"),
        )
    })?;
    let passkey = webauthn
        .finish_passkey_registration(credential, &state)
        .map_err(|e| {
            tracing::warn!(%user, error = %e, "push: a passkey registration did not verify");
            refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "the passkey registration did not verify ({e}); begin again with POST \
                     /v1/enroll/passkey"
                ),
            )
        })?;
    let id = BASE64URL_NOPAD.encode(passkey.cred_id());
    Ok((stored(&passkey)?, id))
}

pub(crate) async fn challenge_handler(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RequestChallengeResponse>, ApiError> {
    same_origin(&app, &headers)?;
    let device = super::approval::device_of(&app, &headers).await?;
    let now = unix(UnixTime::now());
    let request = app
        .store
        .load_approval(&id)
        .await?
        .filter(|r| r.user == device.user && r.state == "pending" && r.expires_at > now)
        .ok_or_else(|| super::approval::no_such_request(&id))?;
    let webauthn = app.push.passkeys.webauthn()?;
    let passkey = passkey_of(&app, &device).await?;
    let (options, state) = webauthn
        .start_passkey_authentication(&[passkey])
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("passkeys: {e}")))?;
    let expires = request.expires_at.min(now + CEREMONY_TTL);
    app.store
        .put_ceremony(
            &approve_key(&id, &device.id),
            &device.user,
            &stored(&state)?,
            expires,
            now,
        )
        .await?;
    Ok(Json(options))
}

async fn passkey_of(app: &App, device: &DeviceRow) -> Result<Passkey, ApiError> {
    let row = app.store.load_passkey(&device.id).await?.ok_or_else(|| {
        refuse(
            StatusCode::CONFLICT,
            "this device has no passkey, so it cannot approve (it may deny); enroll the \
             phone again by link (`sshield-server push enroll-link USER`)",
        )
    })?;
    serde_json::from_str(&row.passkey).map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored passkey: {e}"),
        )
    })
}

/// Checks `assertion` against the challenge made for request `id` and `device`, taking the
/// challenge (it answers once), and stores the passkey's new counter. Refused (403) without
/// an unused, unexpired challenge, or if the assertion does not verify.
pub(crate) async fn check_assertion(
    app: &App,
    device: &DeviceRow,
    id: &str,
    assertion: &PublicKeyCredential,
    now: i64,
) -> Result<(), ApiError> {
    let webauthn = app.push.passkeys.webauthn()?;
    let Some((_, state)) = app
        .store
        .take_ceremony(&approve_key(id, &device.id), now)
        .await?
    else {
        tracing::warn!(user = %device.user, device = %device.id, request = %id,
            "push: an approval without an unused passkey challenge was refused");
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "no unused passkey challenge for request {id:?} from this device (none asked, \
                 expired, or used already); ask for one with POST /v1/me/approvals/{id}/challenge"
            ),
        ));
    };
    let state: PasskeyAuthentication = serde_json::from_str(&state).map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored state: {e}"),
        )
    })?;
    let result = webauthn
        .finish_passkey_authentication(assertion, &state)
        .map_err(|e| {
            tracing::warn!(user = %device.user, device = %device.id, request = %id, error = %e,
                "push: a passkey assertion did not verify");
            refuse(
                StatusCode::FORBIDDEN,
                format!("the passkey assertion did not verify ({e}); nothing was decided"),
            )
        })?;
    let mut passkey = passkey_of(app, device).await?;
    passkey.update_credential(&result);
    app.store
        .update_passkey(&device.id, &stored(&passkey)?, now)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_name_makes_a_relying_party_and_an_ip_address_does_not() {
        let rp = RelyingParty::new("https://sshield.example");
        assert!(rp.unavailable().is_none());
        assert_eq!(rp.origin(), "https://sshield.example");
        let rp = RelyingParty::new("http://localhost:8740");
        assert!(rp.unavailable().is_none(), "{:?}", rp.unavailable());
        assert_eq!(rp.origin(), "http://localhost:8740");
        let rp = RelyingParty::new("http://127.0.0.1:8740");
        let why = rp.unavailable().expect("no passkeys on an IP address");
        assert!(why.contains("push.public_url"), "{why}");
    }

    #[test]
    fn user_handles_are_stable_and_differ_between_users() {
        assert_eq!(user_handle("alice"), user_handle("alice"));
        assert_ne!(user_handle("alice"), user_handle("bob"));
    }
}
