//! Offline logins, the server's side (docs/server.md, "Offline logins"): the material a host
//! keeps to accept a user's codes while no server answers (`POST /v1/offline`), the reports of
//! what it decided meanwhile (`POST /v1/report`), and a host's own audit for `sshield log`
//! (`GET /v1/audit`). Every route is a signed host request (`hosts::authenticate`).
//!
//! Material is given only right after this server allowed the user's login from the asking
//! host ([`RECENT_ALLOW`]): a host, even one whose root was taken, cannot collect the coming
//! codes of users who never logged in there. A report marks the counter or backup code it
//! names as used in the user's record (the same compare-and-swap as a verification), so a code
//! used offline on one host is refused on every other once the server has heard of it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Json;
use sshield_core::{TokenKind, UnixTime, UserName, UserRecord};
use sshield_otp::{hotp, totp_step};
use sshield_wire::offline::{
    backup_hash, code_hash, valid_query_word, AuditFilter, AuditLine, AuditLines, OfflineMaterial,
    OfflineRequest, OfflineSlot, OfflineToken, Report, ReportRequest, ReportResponse, MAX_REPORTS,
    OUTCOME_FAILMODE, OUTCOME_OFFLINE,
};
use sshield_wire::signed::valid_nonce;

use crate::api::{parse_json, ApiError, App};
use crate::hosts;
use crate::records::{self, unix, RecordError, Write};
use crate::storage::{
    AuditEntry, AuditQuery, OfflineStorage, ReportCommitted, ReportWrites, Storage, UserWrite,
};

/// How recent the allowed login must be for a host to get a user's material: the host asks
/// right after the server's answer.
pub const RECENT_ALLOW: i64 = 300;

/// The most entries one `GET /v1/audit` returns.
pub const MAX_AUDIT_LIMIT: u32 = 1000;

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        message: message.into(),
    }
}

fn record_error(e: RecordError) -> ApiError {
    match e {
        RecordError::Storage(e) => e.into(),
        RecordError::Busy(user) => ApiError {
            status: StatusCode::CONFLICT,
            message: format!("user {user:?} is being changed by many requests at once; try again"),
        },
        RecordError::Seal(e) => {
            tracing::error!(error = %e, "offline");
            ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "the user's record cannot be opened on this server".to_owned(),
            }
        }
    }
}

/// `POST /v1/offline`.
pub async fn material_handler(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<OfflineMaterial>, ApiError> {
    let body = body?;
    let now = UnixTime::now();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let host = hosts::authenticate(&app, method.as_str(), path, &headers, &body, now).await?;
    let request: OfflineRequest = parse_json(&headers, &body)?;
    material(&app, &host, &request, now).await.map(Json)
}

/// The material for `request` from `host` at `now`.
pub async fn material(
    app: &App,
    host: &str,
    request: &OfflineRequest,
    now: UnixTime,
) -> Result<OfflineMaterial, ApiError> {
    let user = UserName::new(&request.user)
        .map_err(|e| ApiError::invalid(format!("field `user`: {e}")))?;
    let window = app.offline_max_window.as_secs().min(request.window_secs);
    if window == 0 {
        return Err(forbidden(
            "this server gives no offline material (offline_max_window = \"off\" in its \
             config), or the host asked for none (window_secs = 0)",
        ));
    }
    let recent = app
        .store
        .query_audit(&AuditQuery {
            user: Some(user.as_str().to_owned()),
            host: Some(host.to_owned()),
            since: Some(unix(now).saturating_sub(RECENT_ALLOW)),
            failed_only: false,
            limit: 20,
        })
        .await?;
    if !recent.iter().any(|e| e.outcome == AuditEntry::ALLOWED) {
        return Err(forbidden(format!(
            "offline material for {:?} is given only right after this server allowed their \
             login from host {host:?} (within {RECENT_ALLOW}s)",
            user.as_str()
        )));
    }
    let Some(row) = app.store.load_user(user.as_str()).await? else {
        return Err(forbidden(format!(
            "no user {:?} on this server",
            user.as_str()
        )));
    };
    let record = app
        .key
        .open(user.as_str(), &row.sealed)
        .map_err(|e| record_error(RecordError::Seal(e)))?;
    if record.disabled {
        return Err(forbidden(format!(
            "user {:?} is disabled: no offline material",
            user.as_str()
        )));
    }
    let salt = new_salt()?;
    let expires = unix(now).saturating_add(i64::try_from(window).unwrap_or(i64::MAX));
    Ok(OfflineMaterial {
        user: record.user.clone(),
        tokens: tokens(&record, &app.policy, &salt, now.0, window),
        backup_salt: record.backup.salt.clone(),
        backup: record
            .backup
            .hashes
            .iter()
            .filter(|h| !record.usage.backup_used.contains(h))
            .map(|h| backup_hash(&salt, h))
            .collect(),
        salt,
        issued: unix(now),
        expires,
    })
}

/// 16 random bytes, hex: one issue's salt.
fn new_salt() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "random number generator");
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server's random number generator failed".to_owned(),
        }
    })?;
    Ok(data_encoding::HEXLOWER.encode(&bytes))
}

/// The hashed coming codes of each active authenticator a host may check alone (those bound
/// to ssh keys need the first factor's key, which only the login on the host knows: left out).
fn tokens(
    record: &UserRecord,
    policy: &sshield_core::Policy,
    salt: &str,
    now: u64,
    window: u64,
) -> Vec<OfflineToken> {
    let max = i64::try_from(policy.max_drift).unwrap_or(i64::MAX);
    record
        .authenticators
        .iter()
        .filter(|a| a.active && a.ssh_keys.is_empty())
        .map(|auth| {
            let usage = record.replay_usage(auth);
            let params = match auth.kind {
                TokenKind::Totp => auth.totp_params().hotp(),
                TokenKind::Hotp => auth.hotp_params(),
            };
            let (period, drift, counters) = match auth.kind {
                TokenKind::Totp => {
                    let totp = auth.totp_params();
                    let drift = usage.drift.clamp(-max, max);
                    // The engine searches the window around the learned drift and the one
                    // around real time: the slots cover both.
                    let (start, end) = (
                        totp_step(now, &totp),
                        totp_step(now.saturating_add(window), &totp),
                    );
                    let first = start
                        .min(start.saturating_add_signed(drift))
                        .saturating_sub(policy.window);
                    let last = end
                        .max(end.saturating_add_signed(drift))
                        .saturating_add(policy.window);
                    // Steps used already are never shipped.
                    let first = usage.last_step.map_or(first, |s| first.max(s + 1));
                    (totp.period.seconds(), drift, first..=last)
                }
                TokenKind::Hotp => {
                    let next = usage
                        .next_counter
                        .unwrap_or(0)
                        .max(auth.counter.unwrap_or(0));
                    (0, 0, next..=next.saturating_add(policy.hotp_lookahead))
                }
            };
            OfflineToken {
                authenticator: auth.name.clone(),
                kind: auth.kind.as_str().to_owned(),
                period,
                window: policy.window,
                drift,
                slots: counters
                    .map(|counter| {
                        let code = hotp(&auth.secret, &params, counter);
                        OfflineSlot {
                            counter,
                            hash: code_hash(salt, &auth.name, counter, code.as_str()),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

/// `POST /v1/report`.
pub async fn report_handler(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReportResponse>, ApiError> {
    let body = body?;
    let now = UnixTime::now();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let host = hosts::authenticate(&app, method.as_str(), path, &headers, &body, now).await?;
    let request: ReportRequest = parse_json(&headers, &body)?;
    report(&app, &host, &request, now).await.map(Json)
}

/// Checks every report before any is counted: one bad report refuses the request, and
/// nothing of it is stored.
fn check_report(index: usize, r: &Report) -> Result<UserName, ApiError> {
    let bad =
        |field: &str, what: &str| ApiError::invalid(format!("reports[{index}].{field}: {what}"));
    if !valid_nonce(&r.id) {
        return Err(bad(
            "id",
            "16 to 64 characters of A-Z, a-z, 0-9, '-' or '_'",
        ));
    }
    let user = UserName::new(&r.user).map_err(|e| bad("user", &e.to_string()))?;
    match r.outcome.as_str() {
        OUTCOME_OFFLINE => {
            let code = r.authenticator.is_some() && r.counter.is_some();
            if code == r.backup.is_some() {
                return Err(bad(
                    "outcome",
                    "an offline use names either `authenticator` and `counter`, or `backup`",
                ));
            }
        }
        OUTCOME_FAILMODE => {
            if !matches!(r.reason.as_deref(), Some("failmode-safe" | "unreachable")) {
                return Err(bad(
                    "reason",
                    "a failmode decision is `failmode-safe` or `unreachable`",
                ));
            }
        }
        _ => return Err(bad("outcome", "`offline` or `failmode`")),
    }
    Ok(user)
}

/// Counts `request`'s reports from `host`: each the first time its id is seen, in one
/// transaction with what an offline use marks used and its audit entry.
pub async fn report(
    app: &App,
    host: &str,
    request: &ReportRequest,
    now: UnixTime,
) -> Result<ReportResponse, ApiError> {
    if request.reports.len() > MAX_REPORTS {
        return Err(ApiError::invalid(format!(
            "field `reports`: at most {MAX_REPORTS} per request; send the rest in another"
        )));
    }
    let users = request
        .reports
        .iter()
        .enumerate()
        .map(|(i, r)| check_report(i, r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut answer = ReportResponse {
        recorded: 0,
        duplicate: 0,
    };
    for (r, user) in request.reports.iter().zip(users) {
        if store_report(app, host, r, &user, now).await? {
            app.metrics.verification(&r.outcome, r.reason.as_deref());
            answer.recorded += 1;
        } else {
            answer.duplicate += 1;
        }
    }
    Ok(answer)
}

/// Stores one report in one transaction (`OfflineStorage::commit_report`): its id, the user's
/// record with what an offline use used marked, and its audit entry. True if counted now,
/// false if the host sent it before. A lost race with another write of the user reads the
/// record again and marks anew.
async fn store_report(
    app: &App,
    host: &str,
    r: &Report,
    user: &UserName,
    now: UnixTime,
) -> Result<bool, ApiError> {
    let audit = AuditEntry {
        time: r.time.min(unix(now)),
        host: host.to_owned(),
        user: user.as_str().to_owned(),
        source: r.source.clone(),
        service: r.service.clone(),
        method: r.method.clone(),
        outcome: r.outcome.clone(),
        reason: r.reason.clone().or_else(|| Some("ok".to_owned())),
    };
    for _ in 0..records::MAX_TRIES {
        let marked = if r.outcome == OUTCOME_OFFLINE {
            let planned = records::plan(app, user, now, |slot| {
                Ok::<_, Infallible>((mark_used(slot.as_mut(), r, &app.policy, now.0), ()))
            })
            .await
            .map_err(record_error)?;
            match planned {
                // Marking changes a record that exists, never creates or removes one.
                Ok((Some(UserWrite::Update(row)), ())) => Some(row),
                Ok(_) => None,
                Err(never) => match never {},
            }
        } else {
            None
        };
        let writes = ReportWrites {
            host: host.to_owned(),
            id: r.id.clone(),
            now: unix(now),
            user: marked,
            audit: audit.clone(),
        };
        match app.store.commit_report(&writes).await? {
            ReportCommitted::Stored => return Ok(true),
            ReportCommitted::Duplicate => return Ok(false),
            ReportCommitted::LostRace => continue,
        }
    }
    Err(record_error(RecordError::Busy(user.as_str().to_owned())))
}

/// Marks the counter or backup code an offline use names as used in `record`: whether to
/// store it. A counter beyond what the server could have shipped (a TOTP step after now's
/// window, an HOTP counter past the look-ahead) is ignored: a host cannot burn a user's
/// future codes by reporting them.
fn mark_used(
    record: Option<&mut UserRecord>,
    r: &Report,
    policy: &sshield_core::Policy,
    now: u64,
) -> Write {
    let Some(record) = record else {
        return Write::Keep;
    };
    if let Some(stored) = &r.backup {
        let known = record.backup.hashes.contains(stored);
        if !known || record.usage.backup_used.contains(stored) {
            return Write::Keep;
        }
        record.usage.backup_used.push(stored.clone());
        return Write::Save;
    }
    let (Some(name), Some(counter)) = (&r.authenticator, r.counter) else {
        return Write::Keep;
    };
    let Some(auth) = record.authenticator(name).cloned() else {
        return Write::Keep;
    };
    let mut usage = record.token_usage(name);
    match auth.kind {
        TokenKind::Totp => {
            let latest = totp_step(now, &auth.totp_params())
                .saturating_add(policy.window)
                .saturating_add(policy.max_drift);
            if counter > latest || usage.last_step.is_some_and(|s| s >= counter) {
                return Write::Keep;
            }
            usage.last_step = Some(counter);
        }
        TokenKind::Hotp => {
            let next = usage
                .next_counter
                .unwrap_or(0)
                .max(auth.counter.unwrap_or(0));
            if counter < next || counter > next.saturating_add(policy.hotp_lookahead) {
                return Write::Keep;
            }
            usage.next_counter = Some(counter.saturating_add(1));
        }
    }
    usage.last_used = Some(now);
    record.usage.tokens.insert(name.clone(), usage);
    Write::Save
}

/// `GET /v1/audit`: the asking host's own entries. A host reads no other host's: the audit
/// names users, sources and times fleet-wide, and one host's root must not learn where else
/// its users log in.
pub async fn audit_handler(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<AuditLines>, ApiError> {
    let now = UnixTime::now();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let host = hosts::authenticate(&app, method.as_str(), path, &headers, b"", now).await?;
    let filter = parse_filter(uri.query().unwrap_or(""))?;
    let entries = app
        .store
        .query_audit(&AuditQuery {
            user: filter.user.clone(),
            host: Some(host),
            since: filter.cutoff(unix(now)),
            failed_only: filter.failed,
            limit: i64::from(filter.limit.unwrap_or(100)),
        })
        .await?;
    Ok(Json(AuditLines {
        entries: entries
            .into_iter()
            .map(|e| AuditLine {
                time: e.time,
                host: e.host,
                user: e.user,
                source: e.source,
                service: e.service,
                method: e.method,
                outcome: e.outcome,
                reason: e.reason,
            })
            .collect(),
    }))
}

/// The query of `GET /v1/audit`: `user`, `since` (seconds), `failed` (`true`/`false`),
/// `limit` (1 to [`MAX_AUDIT_LIMIT`]); anything else is a 400 naming it.
pub fn parse_filter(query: &str) -> Result<AuditFilter, ApiError> {
    let bad = |message: String| ApiError {
        status: StatusCode::BAD_REQUEST,
        message,
    };
    let mut filter = AuditFilter::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "user" if valid_query_word(value) => filter.user = Some(value.to_owned()),
            "since" => {
                filter.since = Some(value.parse().map_err(|_| {
                    bad(format!(
                        "query `since`: {value:?} is not a number of seconds"
                    ))
                })?);
            }
            "failed" => {
                filter.failed = value
                    .parse()
                    .map_err(|_| bad(format!("query `failed`: {value:?} is not true or false")))?;
            }
            "limit" => {
                let limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_AUDIT_LIMIT).contains(n));
                filter.limit = Some(limit.ok_or_else(|| {
                    bad(format!(
                        "query `limit`: {value:?} is not a number from 1 to {MAX_AUDIT_LIMIT}"
                    ))
                })?);
            }
            "user" => {
                return Err(bad(format!(
                    "query `user`: {value:?} is not a user name (letters, digits, '.', '-', '_')"
                )))
            }
            "host" => {
                return Err(bad(
                    "query `host`: a host reads the audit of itself only; another host's \
                     entries are for the server's admin (sshield-server audit --host NAME)"
                        .to_owned(),
                ))
            }
            other => {
                return Err(bad(format!(
                    "query: unknown parameter {other:?}; use user, since, failed, limit"
                )))
            }
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slots cover the window around real time and the one around the learned drift, from
    /// now to the end of the material's lifetime, as the engine searches both.
    #[test]
    fn the_slots_cover_real_time_and_the_drift() {
        let now = 1_700_000_010;
        let step = now / 30;
        let mut record = UserRecord::new("alice", now);
        record.authenticators.push(sshield_core::Authenticator {
            name: "phone".into(),
            kind: TokenKind::Totp,
            secret: sshield_otp::Secret::from_bytes(vec![7; 20]).expect("a 20-byte key"),
            algorithm: sshield_otp::Algorithm::Sha1,
            digits: sshield_otp::Digits::SIX,
            period: Some(sshield_otp::Period::THIRTY),
            counter: None,
            ssh_keys: Vec::new(),
            active: true,
            created: now,
        });
        let policy = sshield_core::Policy::default();
        for (drift, first, last) in [(0, step - 1, step + 5), (-3, step - 4, step + 5)] {
            let usage = record.usage.tokens.entry("phone".into()).or_default();
            usage.drift = drift;
            let tokens = tokens(&record, &policy, "00", now, 120);
            let counters: Vec<u64> = tokens[0].slots.iter().map(|s| s.counter).collect();
            assert_eq!(
                counters,
                (first..=last).collect::<Vec<_>>(),
                "drift {drift}"
            );
            assert_eq!(tokens[0].drift, drift);
        }
    }

    #[test]
    fn the_audit_query_round_trips_and_names_what_is_wrong() {
        let filter = AuditFilter {
            user: Some("alice".into()),
            since: Some(60),
            failed: true,
            limit: Some(5),
        };
        assert_eq!(parse_filter(&filter.to_query()).ok(), Some(filter));
        for (bad, says) in [
            ("since=soon", "since"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("failed=maybe", "failed"),
            ("user=a%20b", "user"),
            ("host=web2", "of itself only"),
            ("admin=1", "unknown parameter"),
        ] {
            let e = parse_filter(bad).expect_err(bad);
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains(says), "{bad}: {}", e.message);
        }
    }
}
