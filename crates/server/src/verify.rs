//! One verification: core's engine decides on the user's opened record ([`check_record`]),
//! the new login state is stored by compare-and-swap ([`records::update`]), and the decision
//! is appended to the audit log.
//!
//! The compare-and-swap is what makes a code good once across requests and replicas: of two
//! requests that both accept the same code from the same stored version, only one can write
//! the next version; the other reads again, and the engine then sees the code as used.

use std::net::IpAddr;
use std::time::Duration;

use sshield_core::ratelimit::{self, Origin, UserLimits};
use sshield_core::{check_record, Decision, DenyReason, Response, UnixTime, UserName};

use crate::api::{ApiError, App, VerifyRequest, VerifyResponse};
use crate::metrics;
use crate::records::{self, unix, RecordError, Write};
use crate::sources;
use crate::storage::{AuditEntry, Storage};

/// Decides `request` from `host` at `now`.
pub async fn verify(
    app: &App,
    host: &str,
    request: &VerifyRequest,
    now: UnixTime,
) -> Result<VerifyResponse, ApiError> {
    let user = UserName::new(&request.user)
        .map_err(|e| ApiError::invalid(format!("field `user`: {e}")))?;
    let response = Response::new(&request.code);
    let limits = &app.rate_limit;
    // The host's word for the source: an address, or a name when that is all sshd had.
    let source = request.source.as_deref();
    let origin = Origin::of(
        source.and_then(|s| s.parse::<IpAddr>().ok()),
        source.filter(|s| s.parse::<IpAddr>().is_err()),
        limits,
    );
    // Per source over all users, as on a host: a source locked by failures for any users
    // is refused for users it is not familiar to (the server is not told whether a first
    // factor passed, so that exemption of a host's is not made here).
    let source_lock = match origin.remote() {
        Some(key) if limits.enabled => sources::locked(app, key, now.0).await?,
        _ => None,
    };
    let decided = records::update(app, &user, now, |slot| {
        let Some(record) = slot.as_mut() else {
            let reason = if source_lock.is_some() {
                "locked"
            } else {
                "not-enrolled"
            };
            return Ok::<_, ()>((Write::Keep, Err(reason)));
        };
        // Per (user, source) as on a host (docs/ratelimit.md): a locked bucket answers
        // "locked" without trying the code, so guessing stops there.
        if limits.enabled {
            let buckets = user_limits(record);
            let source_locked = source_lock.is_some() && !buckets.is_familiar(&origin);
            if buckets.locked(&origin, now.0).is_some() || source_locked {
                return Ok((Write::Keep, Err("locked")));
            }
        }
        Ok(
            match check_record(record, &response, now, &app.policy, None) {
                Decision::Allow(method) => {
                    if limits.enabled {
                        user_limits(record).succeeded(&origin, now.0, limits);
                    }
                    (Write::Save, Ok(method.as_str()))
                }
                Decision::Deny(reason @ (DenyReason::WrongCode | DenyReason::Replayed))
                    if limits.enabled =>
                {
                    user_limits(record).failed(&origin, now.0, limits);
                    (Write::Save, Err(reason.as_str()))
                }
                Decision::Deny(reason) => (Write::Keep, Err(reason.as_str())),
            },
        )
    })
    .await;
    let (method, reason) = match decided {
        Ok(Ok(Ok(method))) => (Some(method), None),
        Ok(Ok(Err(reason))) => (None, Some(reason)),
        Ok(Err(())) => (None, Some("store-error")),
        Err(RecordError::Storage(e)) => return Err(e.into()),
        // A record we cannot open or a flood of writes denies: never a reason to let in.
        Err(e @ (RecordError::Seal(_) | RecordError::Busy(_))) => {
            tracing::error!(error = %e, "verification");
            let reason = match e {
                RecordError::Busy(_) => "busy",
                _ => "store-error",
            };
            (None, Some(reason))
        }
    };
    let entry = AuditEntry {
        time: unix(now),
        host: host.to_owned(),
        user: user.as_str().to_owned(),
        source: request.source.clone(),
        service: request.service.clone(),
        method: method.map(str::to_owned),
        outcome: if reason.is_none() {
            AuditEntry::ALLOWED
        } else {
            AuditEntry::DENIED
        }
        .to_owned(),
        reason: reason.map(str::to_owned),
    };
    app.store.append_audit(&entry).await?;
    app.metrics
        .verification(&entry.outcome, entry.reason.as_deref());
    // The host waits, not the server (sshield_wire::api::VerifyResponse::delay_ms).
    let delay_ms = match reason {
        Some(reason) => Some(
            u64::try_from(failure_delay(app, &origin, reason, now).await.as_millis())
                .unwrap_or(u64::MAX),
        ),
        None => None,
    };
    Ok(VerifyResponse {
        outcome: entry.outcome,
        method: entry.method,
        reason: entry.reason,
        delay_ms,
    })
}

/// As on a host: every denial counts against its source, and the pause before the user hears
/// of it (the host's to make) grows with the source's count alone (`delay`, doubling, at most 8 times), so enrolled and
/// unenrolled names, wrong codes and locks all answer alike. No source: `delay`. A store
/// error, or a count that could not be written, waits the longest delay.
async fn failure_delay(app: &App, origin: &Origin, reason: &str, now: UnixTime) -> Duration {
    let limits = &app.rate_limit;
    let count = match origin.remote() {
        _ if !limits.enabled => 0,
        None => 1,
        Some(key) => match sources::failed(app, key, now.0).await {
            Ok(n) => n,
            Err(e) => {
                metrics::database_error();
                tracing::error!(error = %e, "counting a source's failure");
                u32::MAX
            }
        },
    };
    if reason == "store-error" {
        ratelimit::longest_delay(limits)
    } else {
        ratelimit::delay_after(count, limits)
    }
}

fn user_limits(record: &mut sshield_core::UserRecord) -> UserLimits<'_> {
    UserLimits {
        failures: &mut record.usage.failures,
        familiar: &mut record.usage.familiar,
    }
}
