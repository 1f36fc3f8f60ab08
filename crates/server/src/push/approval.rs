//! Push approval's API: a host asks for a push and waits for the outcome; the user's device
//! lists pending requests and approves (with the number their SSH prompt shows), denies, or
//! says "This wasn't me".
//!
//! - Hosts sign their requests as for `/v1/verify`; a host waits only on its own requests.
//! - A device signs in with its bearer token (`Authorization: Bearer`), which browsers never
//!   attach on their own, so another site cannot make a user's browser decide (no CSRF).
//! - A wait is held open until the request changes or `max_wait` passes, woken by a
//!   broadcast inside the server and, on PostgreSQL, by `NOTIFY` from other replicas: no loop
//!   reads the database while nothing happens.
//! - Every decision, and every expiry a host sees, is written to the audit log.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::Json;
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sshield_core::{UnixTime, UserName};
use tokio::sync::broadcast;
use zeroize::Zeroizing;

use super::notice::{Payload, PendingLogin};
use super::passkey::{self, RelyingParty};
use super::webhook::Webhook;
use super::webpush::{Subscription, WebPushError};
use super::{Delivery, Notifier, Urgency};
use crate::api::{parse_json, ApiError, App};
use crate::config::PushSettings;
use crate::hosts;
use crate::records::unix;
use crate::storage::{
    Admission, ApprovalRow, AuditEntry, Backend, DeviceRow, PasskeyAdded, PasskeyRow,
    PasskeyStorage, PushStorage, Storage, Verdict,
};
use crate::users;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

/// What a wake-up says when every waiter must look again (a replica's listener reconnected
/// and may have missed notifications).
const EVERYONE: &str = "*";

/// Push approval's part of the server: its settings, its notifier, and the broadcast that
/// wakes waiting hosts.
pub struct Push {
    /// The `[push]` settings.
    pub settings: PushSettings,
    /// Sends Web Push and webhooks.
    pub notifier: Arc<Notifier>,
    /// This server as a WebAuthn relying party (passkeys for Approve).
    pub passkeys: RelyingParty,
    /// The admins' webhook (`push.admin_webhook`), told of every "This wasn't me".
    pub admin_webhook: Option<Webhook>,
    changed: broadcast::Sender<String>,
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("settings", &self.settings)
            .field("notifier", &self.notifier)
            .finish_non_exhaustive()
    }
}

impl Push {
    /// Push approval with `settings`, sending through `notifier`.
    pub fn new(settings: PushSettings, notifier: Notifier) -> Self {
        let passkeys = RelyingParty::new(&settings.public_url);
        Self {
            settings,
            notifier: Arc::new(notifier),
            passkeys,
            admin_webhook: None,
            changed: broadcast::channel(1024).0,
        }
    }

    /// The same, telling the admins of every "This wasn't me" through `hook`.
    pub fn with_admin_webhook(mut self, hook: Webhook) -> Self {
        self.admin_webhook = Some(hook);
        self
    }

    /// Wakes whoever waits on request `id` in this server.
    pub fn wake(&self, id: &str) {
        // No receiver is not an error: nobody waits.
        let _ = self.changed.send(id.to_owned());
    }

    /// Wakes every waiter in this server, to look again.
    pub fn wake_everyone(&self) {
        self.wake(EVERYONE);
    }
}

/// Hears other replicas' decisions (PostgreSQL `LISTEN`) and wakes this server's waiters;
/// returns at once on SQLite, where this server is the only one. Runs until the server stops.
pub async fn listen_to_replicas(app: Arc<App>) {
    let Backend::Postgres(pg) = &app.store else {
        return;
    };
    loop {
        match pg.approval_listener().await {
            Ok(mut listener) => {
                // Anything decided while no listener was connected is seen by looking again.
                app.push.wake_everyone();
                loop {
                    match listener.recv().await {
                        Ok(note) => app.push.wake(note.payload()),
                        Err(e) => {
                            tracing::warn!(error = %e, "push: lost the database's notifications; reconnecting");
                            app.push.wake_everyone();
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "push: cannot listen for other replicas' decisions")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn status(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

pub use sshield_wire::api::{PushCreated, PushRequest, PushState, WaitRequest};

/// The longest command kept with a request.
const MAX_COMMAND: usize = 1024;

pub(crate) async fn create_handler(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PushCreated>), ApiError> {
    let body = body?;
    let now = UnixTime::now();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let host = hosts::authenticate(&app, method.as_str(), path, &headers, &body, now).await?;
    let request: PushRequest = parse_json(&headers, &body)?;
    let user = UserName::new(&request.user)
        .map_err(|e| ApiError::invalid(format!("`user` {:?}: {e}", request.user)))?;
    if request
        .command
        .as_ref()
        .is_some_and(|c| c.len() > MAX_COMMAND)
    {
        return Err(ApiError::invalid(format!(
            "`command` is longer than {MAX_COMMAND} bytes"
        )));
    }
    if app.store.load_user(user.as_str()).await?.is_none() {
        return Err(status(
            StatusCode::NOT_FOUND,
            format!(
                "no user {:?} on this server; enroll them first",
                user.as_str()
            ),
        ));
    }
    let now = unix(now);
    // An expired request no longer counts as pending; each is audited by whoever expires it.
    expire(&app, now).await?;
    // A push without a number (the host's admin allows it for clients with no terminal) is
    // stored with number 0 and no choices: approved by `approve` without a number.
    let (number, choices) = if request.without_number {
        (0, String::new())
    } else {
        let number = random_below(90)? + 10;
        (number, choices(number)?)
    };
    let row = ApprovalRow {
        id: random_token(16)?.to_string(),
        user: user.as_str().to_owned(),
        host,
        source: request.source,
        service: request.service,
        command: request.command,
        number,
        choices,
        created_at: now,
        expires_at: now + i64::try_from(app.push.settings.approval_ttl.as_secs()).unwrap_or(60),
        state: ApprovalRow::PENDING.to_owned(),
        decided_at: None,
        device: None,
    };
    match app
        .store
        .admit_approval(&row, i64::from(app.push.settings.per_hour), now)
        .await?
    {
        Admission::Stored => {}
        Admission::AlreadyPending { .. } => {
            return Err(status(
                StatusCode::CONFLICT,
                format!(
                    "user {:?} has a push request pending already (one at a time); wait for it \
                     to be decided or to expire",
                    row.user
                ),
            ))
        }
        Admission::TooMany { count } => {
            return Err(status(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "user {:?} had {count} push requests in the last hour, the most allowed \
                     (push.per_hour); ask for a code instead",
                    row.user
                ),
            ))
        }
        Admission::Blocked { since } => {
            return Err(status(
                StatusCode::FORBIDDEN,
                format!(
                    "pushes to user {:?} are blocked since {} (they answered \"This wasn't me\"); \
                     an admin clears it with `sshield-server push unblock {}`",
                    row.user,
                    UnixTime(u64::try_from(since).unwrap_or(0)).to_rfc3339(),
                    row.user
                ),
            ))
        }
    }
    let notified = notify(&app, &row).await?;
    Ok((
        StatusCode::CREATED,
        Json(PushCreated {
            id: row.id,
            number: row.number,
            expires_at: row.expires_at,
            notified,
        }),
    ))
}

/// Hands the notification to every device of the user and their webhook, in the background
/// (a slow push service must not hold up the host); how many it was handed to.
async fn notify(app: &Arc<App>, row: &ApprovalRow) -> Result<usize, ApiError> {
    let login = pending_login(row);
    let payload = Payload::login(&login, &app.push.settings.public_url).to_json();
    let devices: Vec<(String, Subscription)> = app
        .store
        .list_devices(&row.user)
        .await?
        .into_iter()
        .filter(|d| d.revoked_at.is_none())
        .filter_map(|d| subscription_of(&d).map(|s| (d.id, s)))
        .collect();
    let webhook = app.store.load_webhook(&row.user).await?;
    let count = devices.len() + usize::from(webhook.is_some());
    let ttl = app.push.settings.approval_ttl;
    let app = Arc::clone(app);
    let (id, user) = (row.id.clone(), row.user.clone());
    tokio::spawn(async move {
        for (device, subscription) in devices {
            let delivery = app
                .push
                .notifier
                .push(&subscription, &payload, ttl, Urgency::High)
                .await;
            match delivery {
                Ok(Delivery::Gone { .. }) => {
                    // The browser unsubscribed; the device keeps its sign-in and may
                    // subscribe again.
                    tracing::info!(%device, "push: subscription gone, forgotten");
                    if let Err(e) = app.store.set_device_data(&user, &device, "{}").await {
                        tracing::warn!(error = %e, "push: forgetting a gone subscription");
                    }
                }
                Ok(d) => tracing::info!(request = %id, %device, delivery = %d, "push"),
                Err(e) => tracing::warn!(request = %id, %device, error = %e, "push"),
            }
        }
        if let Some(hook) = webhook {
            match Webhook::new(&hook.url, hook.secret) {
                Ok(hook) => {
                    let d = app.push.notifier.webhook(&hook, &payload).await;
                    tracing::info!(request = %id, delivery = %d, "webhook");
                }
                Err(e) => tracing::warn!(request = %id, error = %e, "webhook"),
            }
        }
    });
    Ok(count)
}

/// A device's stored subscription, if it has a valid one.
pub fn subscription_of(device: &DeviceRow) -> Option<Subscription> {
    let stored: StoredSubscription = serde_json::from_str(&device.data).ok()?;
    Subscription::parse(&stored.endpoint, &stored.keys.p256dh, &stored.keys.auth).ok()
}

pub(crate) async fn wait_handler(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PushState>, ApiError> {
    let body = body?;
    let start = UnixTime::now();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let host = hosts::authenticate(&app, method.as_str(), path, &headers, &body, start).await?;
    let request: WaitRequest = parse_json(&headers, &body)?;
    // Subscribe before reading, so a decision between the read and the wait still wakes us.
    let mut changed = app.push.changed.subscribe();
    let deadline = tokio::time::Instant::now() + app.push.settings.max_wait;
    loop {
        let row = app
            .store
            .load_approval(&request.id)
            .await?
            .filter(|r| r.host == host)
            .ok_or_else(|| {
                status(
                    StatusCode::NOT_FOUND,
                    format!("no push request {:?} from this host", request.id),
                )
            })?;
        let now = unix(UnixTime::now());
        if row.state != ApprovalRow::PENDING {
            return Ok(Json(PushState {
                id: row.id,
                state: row.state,
            }));
        }
        if now >= row.expires_at {
            expire(&app, now).await?;
            return Ok(Json(PushState {
                id: row.id,
                state: ApprovalRow::EXPIRED.to_owned(),
            }));
        }
        // Sleep until the request changes, it expires, or the wait's bound.
        let expiry = tokio::time::Instant::now()
            + Duration::from_secs(u64::try_from(row.expires_at - now).unwrap_or(0));
        let until = deadline.min(expiry);
        let woken = tokio::time::timeout_at(until, async {
            loop {
                match changed.recv().await {
                    Ok(id) if id == row.id || id == EVERYONE => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                }
            }
        })
        .await;
        if woken.is_err() && until == deadline {
            return Ok(Json(PushState {
                id: row.id,
                state: ApprovalRow::PENDING.to_owned(),
            }));
        }
    }
}

/// The device a request comes from, by its bearer token: 401 without a valid one.
pub(crate) async fn device_of(app: &App, headers: &HeaderMap) -> Result<DeviceRow, ApiError> {
    let unauthorized = || {
        status(
            StatusCode::UNAUTHORIZED,
            "sign in with this device's token (Authorization: Bearer ...); a revoked device \
             must be added again",
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    // Looked up by its hash: the database never holds a usable token, and the lookup's
    // timing says nothing about the token's bytes.
    app.store
        .device_by_token(&token_hash(token))
        .await?
        .ok_or_else(unauthorized)
}

/// SHA-256 of a device token, as stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// One pending request, as the approval page shows it: never which number is right.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingView {
    /// The request's id.
    pub id: String,
    /// The host.
    pub host: String,
    /// The user.
    pub user: String,
    /// The client's address.
    pub source: Option<String>,
    /// The service.
    pub service: String,
    /// The command, if any.
    pub command: Option<String>,
    /// The three numbers to pick from.
    pub choices: Vec<i64>,
    /// When it was asked.
    pub created_at: i64,
    /// When it expires.
    pub expires_at: i64,
}

/// `GET /v1/me/approvals`: the signed-in user's pending requests.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingList {
    /// Newest first.
    pub approvals: Vec<PendingView>,
}

pub(crate) async fn list_handler(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<PendingList>, ApiError> {
    let device = device_of(&app, &headers).await?;
    let rows = app
        .store
        .pending_approvals(&device.user, unix(UnixTime::now()))
        .await?;
    let approvals = rows
        .into_iter()
        .map(|r| PendingView {
            choices: r
                .choices
                .split(',')
                .filter_map(|n| n.parse().ok())
                .collect(),
            id: r.id,
            host: r.host,
            user: r.user,
            source: r.source,
            service: r.service,
            command: r.command,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
        .collect();
    Ok(Json(PendingList { approvals }))
}

/// `POST /v1/me/approvals/{id}`: the user's decision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// `approve`, `deny` or `report` ("This wasn't me").
    pub decision: String,
    /// The number picked, for `approve`.
    #[serde(default)]
    pub number: Option<i64>,
    /// For `approve`: the passkey's answer (`navigator.credentials.get()`) to the challenge
    /// from `POST /v1/me/approvals/{id}/challenge`.
    #[serde(default)]
    pub assertion: Option<PublicKeyCredential>,
}

/// The answer to a decision about a request that is not the device's user's, not pending, or
/// not there: one message, so a device learns nothing about other users' requests.
pub(crate) fn no_such_request(id: &str) -> ApiError {
    status(
        StatusCode::NOT_FOUND,
        format!("no pending request {id:?} of yours: it was decided, expired, or never was"),
    )
}

/// The answer to an enrollment link that is unknown, used or expired (logged).
pub(crate) fn link_refused() -> ApiError {
    tracing::warn!("push: an enrollment link was refused (unknown, used or expired)");
    status(
        StatusCode::UNAUTHORIZED,
        "this enrollment link is unknown, used or expired; ask your admin for a new one \
         (`sshield-server push enroll-link USER`)",
    )
}

pub(crate) async fn decide_handler(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PushState>, ApiError> {
    let body = body?;
    passkey::same_origin(&app, &headers)?;
    let device = device_of(&app, &headers).await?;
    let request: DecisionRequest = parse_json(&headers, &body)?;
    let verdict = match (request.decision.as_str(), request.number) {
        ("approve", Some(number)) => Verdict::Approve { number },
        ("approve", None) => {
            // Only a push without a number is approved without one.
            let numberless = app
                .store
                .load_approval(&id)
                .await?
                .is_some_and(|r| r.user == device.user && r.number == 0);
            if !numberless {
                return Err(ApiError::invalid(
                    "`approve` needs `number`: the one the SSH prompt shows".to_owned(),
                ));
            }
            Verdict::Approve { number: 0 }
        }
        ("deny", _) => Verdict::Deny,
        ("report", _) => Verdict::Report,
        (other, _) => {
            return Err(ApiError::invalid(format!(
                "`decision` {other:?} is not one of approve, deny, report"
            )))
        }
    };
    let now = unix(UnixTime::now());
    if let Verdict::Approve { .. } = verdict {
        // A tap alone never approves: a fresh passkey assertion for this very request.
        let assertion = request.assertion.as_ref().ok_or_else(|| {
            ApiError::invalid(
                "`approve` needs `assertion`: the passkey's answer to the challenge from \
                 POST /v1/me/approvals/{id}/challenge"
                    .to_owned(),
            )
        })?;
        passkey::check_assertion(&app, &device, &id, assertion, now).await?;
    }
    let decided = app
        .store
        .decide_approval(&id, &device.user, verdict, &device.id, now)
        .await?;
    let Some(row) = decided else {
        // Another user's request reads as no request at all: its existence is not told.
        tracing::warn!(user = %device.user, device = %device.id, request = %id,
            "push: a decision about no pending request of this user was refused");
        return Err(no_such_request(&id));
    };
    app.store.announce_approval(&row.id).await?;
    app.push.wake(&row.id);
    let reason = match verdict {
        Verdict::Approve { .. } if row.state == ApprovalRow::DENIED => "push-wrong-number",
        _ => row.state.as_str(),
    };
    audit(&app, &row, reason, now).await?;
    if verdict == Verdict::Report {
        tracing::warn!(user = %row.user, host = %row.host, source = ?row.source,
            "push: the user says this login wasn't them; their pushes are blocked until an admin clears it");
        tell_admins(&app, &row, now);
    }
    Ok(Json(PushState {
        id: row.id,
        state: row.state,
    }))
}

/// Tells the admins' webhook, if there is one, that `row`'s user said "This wasn't me", in
/// the background (the phone's answer does not wait for the receiver).
fn tell_admins(app: &Arc<App>, row: &ApprovalRow, now: i64) {
    if app.push.admin_webhook.is_none() {
        return;
    }
    let login = pending_login(row);
    let payload = Payload::not_me(&login, &app.push.settings.public_url, now).to_json();
    let app = Arc::clone(app);
    tokio::spawn(async move {
        if let Some(hook) = &app.push.admin_webhook {
            let d = app.push.notifier.webhook(hook, &payload).await;
            tracing::info!(request = %login.id, delivery = %d, "admin webhook");
        }
    });
}

fn pending_login(row: &ApprovalRow) -> PendingLogin {
    PendingLogin {
        id: row.id.clone(),
        host: row.host.clone(),
        user: row.user.clone(),
        source: row.source.clone(),
        service: row.service.clone(),
        command: row.command.clone(),
        created_at: row.created_at,
        expires_at: row.expires_at,
    }
}

/// Marks every request past its expiry expired, and audits each (once: a row is returned to
/// the one caller, on any replica, whose UPDATE changed it).
async fn expire(app: &App, now: i64) -> Result<(), ApiError> {
    for row in app.store.expire_approvals(now).await? {
        audit(app, &row, ApprovalRow::EXPIRED, now).await?;
        app.store.announce_approval(&row.id).await?;
        app.push.wake(&row.id);
    }
    Ok(())
}

/// One audit line for a push decision; `how` is the row's state or why it was denied.
async fn audit(app: &App, row: &ApprovalRow, how: &str, now: i64) -> Result<(), ApiError> {
    let allowed = how == ApprovalRow::APPROVED;
    let reason = match how {
        ApprovalRow::APPROVED => None,
        ApprovalRow::DENIED => Some("push-denied"),
        ApprovalRow::REPORTED => Some("push-not-me"),
        ApprovalRow::EXPIRED => Some("push-expired"),
        other => Some(other),
    };
    app.store
        .append_audit(&AuditEntry {
            time: now,
            host: row.host.clone(),
            user: row.user.clone(),
            source: row.source.clone(),
            service: row.service.clone(),
            method: Some("push".to_owned()),
            outcome: AuditEntry::outcome(allowed),
            reason: reason.map(str::to_owned),
        })
        .await?;
    Ok(())
}

/// A browser's `PushSubscription.toJSON()`, as the device stores it.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredSubscription {
    /// The push service's URL.
    pub endpoint: String,
    /// The browser's keys.
    pub keys: SubscriptionKeys,
}

/// The keys of a [`StoredSubscription`].
#[derive(Debug, Serialize, Deserialize)]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key, base64url.
    pub p256dh: String,
    /// The browser's authentication secret, base64url.
    pub auth: String,
}

/// `PUT /v1/me/subscription`: the device's browser subscribed (or subscribed again).
pub(crate) async fn subscribe_handler(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let body = body?;
    passkey::same_origin(&app, &headers)?;
    let device = device_of(&app, &headers).await?;
    // Unknown fields (a browser's `expirationTime`) are ignored, as browsers add them.
    let stored: StoredSubscription = parse_json(&headers, &body)?;
    let subscription =
        Subscription::parse(&stored.endpoint, &stored.keys.p256dh, &stored.keys.auth)
            .map_err(|e: WebPushError| ApiError::invalid(e.to_string()))?;
    // Every browser's push service is https. A plain http:// endpoint would let a device's
    // holder make this server POST to services inside its network (SSRF); it is allowed only
    // where the admin says so, for a test push service.
    if !subscription.endpoint.is_https() && !app.push.settings.allow_http_endpoints {
        return Err(ApiError::invalid(format!(
            "the push subscription's `endpoint` {:?} is not https://; browsers' push services \
             all are (push.allow_http_endpoints is for a test push service only)",
            stored.endpoint
        )));
    }
    let data = serde_json::to_string(&stored)
        .map_err(|e| status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    app.store
        .set_device_data(&device.user, &device.id, &data)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/enroll`: a phone spends an enrollment link and becomes one of the user's devices.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The token from the link (its `#` fragment).
    pub token: String,
    /// A name for the device (`alice's phone`), at most 64 characters.
    pub name: String,
    /// The browser's answer (`navigator.credentials.create()`) to the registration begun with
    /// `POST /v1/enroll/passkey`. Without it the device gets notifications and may deny, but
    /// cannot approve.
    #[serde(default)]
    pub passkey: Option<RegisterPublicKeyCredential>,
}

/// The new device: its id and the bearer token it signs in with from now on.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Enrolled {
    /// Whose device it is.
    pub user: String,
    /// The device's id (`push devices`).
    pub device: String,
    /// The device's bearer token; shown only in this answer.
    pub token: String,
    /// Whether the device has a passkey (and so may approve).
    pub passkey: bool,
    /// A new set of the user's backup codes (the old set is void), shown only in this
    /// answer; empty if the user has no record on this server.
    pub backup_codes: Vec<String>,
}

/// Longest device name.
const MAX_DEVICE_NAME: usize = 64;

pub(crate) async fn enroll_handler(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
    let body = body?;
    passkey::same_origin(&app, &headers)?;
    let request: EnrollRequest = parse_json(&headers, &body)?;
    let name = request.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_DEVICE_NAME
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(format!(
            "`name`: 1 to {MAX_DEVICE_NAME} characters, no control characters"
        )));
    }
    let now = unix(UnixTime::now());
    let hash = token_hash(&request.token);
    // The passkey is checked before the link is spent: a registration that fails leaves the
    // link usable, so the phone may try again.
    let passkey = match &request.passkey {
        Some(credential) => {
            if app.store.peek_enroll_link(&hash, now).await?.is_none() {
                return Err(link_refused());
            }
            Some(passkey::finish_registration(&app, &hash, credential, now).await?)
        }
        None => None,
    };
    let Some(user) = app.store.use_enroll_link(&hash, now).await? else {
        return Err(link_refused());
    };
    let (device, token) = match passkey {
        None => add_device(&app, &user, name, now).await?,
        Some((passkey, credential_id)) => {
            let (row, token) = new_device(&user, name, now)?;
            let key = PasskeyRow {
                credential_id,
                device: row.id.clone(),
                user: user.clone(),
                passkey,
                created_at: now,
                used_at: None,
            };
            if app.store.add_device_with_passkey(&row, &key).await? == PasskeyAdded::CredentialTaken
            {
                tracing::warn!(%user, "push: a passkey registered already was refused");
                return Err(status(
                    StatusCode::CONFLICT,
                    "this passkey is registered already; the link is spent, ask your admin \
                     for a new one and register a new passkey",
                ));
            }
            (row, token)
        }
    };
    // The holder of a fresh enrollment may add an authenticator app, for a while (push::app).
    super::app::grant(&app, &device, now).await?;
    let device = device.id;
    let backup_codes = match UserName::new(&user) {
        Ok(name) if app.store.load_user(&user).await?.is_some() => {
            users::renew_backup_codes(&app, &name, UnixTime::now())
                .await
                .map_err(|e| status(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
                .iter()
                .map(|c| c.to_string())
                .collect()
        }
        _ => Vec::new(),
    };
    tracing::info!(%user, %device, passkey = request.passkey.is_some(), "push: a device enrolled by link");
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            user,
            device,
            token: token.to_string(),
            passkey: request.passkey.is_some(),
            backup_codes,
        }),
    ))
}

/// Adds a Web Push device for `user`, not yet subscribed: its row and its bearer token (only
/// the token's hash is stored).
pub async fn add_device(
    app: &App,
    user: &str,
    name: &str,
    now: i64,
) -> Result<(DeviceRow, Zeroizing<String>), ApiError> {
    let (row, token) = new_device(user, name, now)?;
    app.store.add_device(&row).await?;
    Ok((row, token))
}

/// A new device row for `user`, not yet stored, and its bearer token.
fn new_device(
    user: &str,
    name: &str,
    now: i64,
) -> Result<(DeviceRow, Zeroizing<String>), ApiError> {
    let token = random_token(32)?;
    let row = DeviceRow {
        id: random_token(6)?.to_string(),
        user: user.to_owned(),
        kind: "webpush".to_owned(),
        name: name.to_owned(),
        data: "{}".to_owned(),
        token_hash: Some(token_hash(&token)),
        created_at: now,
        revoked_at: None,
    };
    Ok((row, token))
}

/// `GET /v1/push/key`: the VAPID public key browsers subscribe with.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VapidPublicKey {
    /// The uncompressed P-256 point, base64url.
    pub vapid_public_key: String,
}

pub(crate) async fn key_handler(State(app): State<Arc<App>>) -> Json<VapidPublicKey> {
    Json(VapidPublicKey {
        vapid_public_key: app.push.notifier.vapid_public_key(),
    })
}

/// `n` random bytes as base64url text: ids and device tokens.
pub fn random_token(n: usize) -> Result<Zeroizing<String>, ApiError> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    getrandom::getrandom(&mut bytes).map_err(|e| {
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the system's random number generator failed: {e}"),
        )
    })?;
    Ok(Zeroizing::new(BASE64URL_NOPAD.encode(&bytes)))
}

/// A uniform number in `0..n` (n ≤ 256), by rejection: no value is likelier than another.
fn random_below(n: u16) -> Result<i64, ApiError> {
    let limit = 256 - 256 % n;
    loop {
        let mut byte = [0u8; 1];
        getrandom::getrandom(&mut byte).map_err(|e| {
            status(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the system's random number generator failed: {e}"),
            )
        })?;
        if u16::from(byte[0]) < limit {
            return Ok(i64::from(u16::from(byte[0]) % n));
        }
    }
}

/// `number` and two other two-digit numbers, in ascending order (the order says nothing).
fn choices(number: i64) -> Result<String, ApiError> {
    let mut picked = vec![number];
    while picked.len() < 3 {
        let other = random_below(90)? + 10;
        if !picked.contains(&other) {
            picked.push(other);
        }
    }
    picked.sort_unstable();
    Ok(picked
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choices_are_three_distinct_two_digit_numbers_with_the_right_one() {
        for _ in 0..200 {
            let number = random_below(90).expect("rng") + 10;
            let text = choices(number).expect("rng");
            let list: Vec<i64> = text.split(',').map(|n| n.parse().expect("n")).collect();
            assert_eq!(list.len(), 3, "{text}");
            assert!(list.contains(&number), "{text}");
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{text}");
            assert!(list.iter().all(|n| (10..100).contains(n)), "{text}");
        }
    }
}
