//! The authenticator app as a fallback, added from the phone's enrollment page: a TOTP
//! authenticator made as `sshield-server user enroll` makes one ([`users::add_app`]), shown as
//! a QR code, and confirmed with the app's first code ([`users::confirm`]).
//!
//! A secret leaves the server only to the holder of a fresh enrollment: enrolling by link
//! grants the new device this step until `push.enroll_link_ttl` after its creation (a row in
//! `webauthn_ceremonies` under `app:<device>`), and a confirmation spends the grant. A device
//! added by the CLI, or enrolled long ago, has no grant; a device only ever acts for its own
//! user. A second request before the confirmation replaces the pending authenticator, never
//! a confirmed one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use serde::{Deserialize, Serialize};
use sshield_core::ratelimit::Origin;
use sshield_core::{UnixTime, UserName};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::approval::device_of;
use super::passkey::same_origin;
use crate::api::{parse_json, ApiError, App};
use crate::records::unix;
use crate::storage::{AuditEntry, DeviceRow, PasskeyStorage, Storage};
use crate::users::{self, UserError};

/// The grant's key in `webauthn_ceremonies`.
fn grant_key(device: &str) -> String {
    format!("app:{device}")
}

/// The name of the authenticator `device` adds, so its confirmation names the phone.
fn authenticator_name(device: &str) -> String {
    format!("app-{device}")
}

/// Lets `device`, just enrolled by link, add an authenticator app until `enroll_link_ttl`
/// after its creation.
pub(crate) async fn grant(app: &App, device: &DeviceRow, now: i64) -> Result<(), ApiError> {
    let ttl = i64::try_from(app.push.settings.enroll_link_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    app.store
        .put_ceremony(
            &grant_key(&device.id),
            &device.user,
            "",
            device.created_at.saturating_add(ttl),
            now,
        )
        .await?;
    Ok(())
}

fn refuse(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

/// The device's grant, or 403 naming why there is none and what to do.
async fn granted(app: &App, device: &DeviceRow, now: i64) -> Result<i64, ApiError> {
    match app.store.peek_ceremony(&grant_key(&device.id), now).await? {
        Some((user, until)) if user == device.user => Ok(until),
        _ => {
            tracing::warn!(user = %device.user, device = %device.id,
                "push: an authenticator app step outside a fresh enrollment was refused");
            Err(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "this device may add an authenticator app only once, within {} of its \
                     enrollment by link; ask your admin for a new enrollment link \
                     (`sshield-server push enroll-link USER`)",
                    humantime::format_duration(app.push.settings.enroll_link_ttl)
                ),
            ))
        }
    }
}

/// The user's name as a [`UserName`]; a device row holds only names that were valid.
fn user_of(device: &DeviceRow) -> Result<UserName, ApiError> {
    UserName::new(&device.user).map_err(|e| {
        refuse(
            StatusCode::CONFLICT,
            format!("this device's user {:?}: {e}", device.user),
        )
    })
}

/// A user error as the phone sees it: what to do, never a 5xx for the user's own input.
fn answer(error: UserError) -> ApiError {
    let status = match &error {
        UserError::Refused {
            reason: "locked", ..
        } => StatusCode::TOO_MANY_REQUESTS,
        UserError::Refused { .. } => StatusCode::FORBIDDEN,
        UserError::NotEnrolled(_) | UserError::AlreadyEnrolled(_) => StatusCode::CONFLICT,
        UserError::NothingPending(_) => StatusCode::CONFLICT,
        UserError::Record(_) | UserError::Random(_) => StatusCode::SERVICE_UNAVAILABLE,
        UserError::Import(_) | UserError::ImportConflicts(_) | UserError::Export { .. } => {
            StatusCode::CONFLICT
        }
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(error = %error, "push: the authenticator app step");
    }
    let mut message = error.to_string();
    if let UserError::NothingPending(_) = error {
        message.push_str("; add one first (POST /v1/me/authenticator)");
    }
    refuse(status, message)
}

/// The request's JSON body; a malformed one (an unknown field such as another user's name) is
/// refused and logged with the device that sent it. The log has the status, not the parser's
/// message, which may quote a code typed as a number.
fn body_of<T: serde::de::DeserializeOwned>(
    device: &DeviceRow,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    parse_json(headers, body).inspect_err(|e| {
        tracing::warn!(user = %device.user, device = %device.id, status = %e.status,
            "push: a malformed authenticator app request was refused");
    })
}

/// `POST /v1/me/authenticator`'s body: `{}` (JSON, so a cross-site form cannot send it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppBegin {}

/// `POST /v1/me/authenticator`'s answer: the pending authenticator and how to put it into an
/// app. Every field but `authenticator` and `until` holds the secret.
#[derive(Serialize)]
struct AppOffer<'a> {
    /// The authenticator's name in the user's record.
    authenticator: &'a str,
    /// The `otpauth://` URI.
    uri: &'a str,
    /// The secret in base32, for typing.
    secret: &'a str,
    /// The URI as a QR code, an SVG document.
    qr_svg: &'a str,
    /// Until when (Unix seconds) this device may confirm it.
    until: i64,
}

/// The URI as a QR code in SVG: dark modules on white, with the quiet zone scanners need.
fn qr_svg(uri: &str) -> Result<Zeroizing<String>, ApiError> {
    let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M).map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot draw a QR code for the authenticator's URI: {e}"),
        )
    })?;
    Ok(Zeroizing::new(
        code.render::<svg::Color<'_>>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .build(),
    ))
}

/// `POST /v1/me/authenticator`: a new pending authenticator app for the device's user.
pub(crate) async fn begin_handler(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    same_origin(&app, &headers)?;
    let device = device_of(&app, &headers).await?;
    let _: AppBegin = body_of(&device, &headers, &body)?;
    let now = UnixTime::now();
    let until = granted(&app, &device, unix(now)).await?;
    let user = user_of(&device)?;
    let name = authenticator_name(&device.id);
    let added = users::add_app(&app, &user, &name, now)
        .await
        .map_err(answer)?;
    let svg = qr_svg(&added.uri)?;
    let offer = AppOffer {
        authenticator: &added.name,
        uri: &added.uri,
        secret: &added.secret,
        qr_svg: &svg,
        until,
    };
    let mut json = Zeroizing::new(serde_json::to_vec(&offer).map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the answer: {e}"),
        )
    })?);
    // Never the secret: the name of what was made, and for whom.
    tracing::info!(user = %device.user, device = %device.id, authenticator = %added.name,
        "push: an authenticator app was offered to a newly enrolled device");
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        // Moved, not copied: the HTTP stack frees the one buffer left.
        std::mem::take(&mut *json),
    )
        .into_response())
}

/// `POST /v1/me/authenticator/confirm`'s body; wiped when dropped, never shown.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct AppConfirm {
    /// The code the app shows now.
    pub code: String,
}

impl std::fmt::Debug for AppConfirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppConfirm([redacted])")
    }
}

/// `POST /v1/me/authenticator/confirm`'s answer.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppConfirmed {
    /// The authenticator now active.
    pub authenticator: String,
}

/// `POST /v1/me/authenticator/confirm`: the app's first code activates the pending
/// authenticator and ends this device's grant. A wrong code counts as a failed try against
/// the user (from the device) and leaves it pending.
pub(crate) async fn confirm_handler(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AppConfirmed>, ApiError> {
    let body = body?;
    same_origin(&app, &headers)?;
    let device = device_of(&app, &headers).await?;
    let request: AppConfirm = body_of(&device, &headers, &body)?;
    let now = UnixTime::now();
    granted(&app, &device, unix(now)).await?;
    let user = user_of(&device)?;
    let source = format!("device {}", device.id);
    let from = Origin::of(None, Some(&source), &app.rate_limit);
    let code = sshield_core::Response::new(&request.code);
    let confirmed = users::confirm(&app, &user, &code, Some(&from), now).await;
    let reason = match &confirmed {
        Ok(_) => None,
        Err(UserError::Refused { reason, .. }) => Some(*reason),
        Err(_) => None,
    };
    if confirmed.is_ok() || reason.is_some() {
        app.store
            .append_audit(&AuditEntry {
                time: unix(now),
                host: "-".to_owned(),
                user: device.user.clone(),
                source: Some(source),
                service: "enroll".to_owned(),
                method: confirmed.is_ok().then(|| "totp".to_owned()),
                outcome: AuditEntry::outcome(confirmed.is_ok()),
                reason: reason.map(str::to_owned),
            })
            .await?;
    }
    let name = match confirmed {
        Ok(name) => name,
        Err(e) => {
            tracing::warn!(user = %device.user, device = %device.id, error = %e,
                "push: an authenticator app was not confirmed");
            return Err(answer(e));
        }
    };
    // Once per enrollment: the grant is spent.
    app.store
        .take_ceremony(&grant_key(&device.id), unix(now))
        .await?;
    tracing::info!(user = %device.user, device = %device.id, authenticator = %name,
        "push: an authenticator app was confirmed from a newly enrolled device");
    Ok(Json(AppConfirmed {
        authenticator: name,
    }))
}
