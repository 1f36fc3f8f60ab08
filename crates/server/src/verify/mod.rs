//! One verification: core's engine decides on the user's opened record ([`check_record`]),
//! and the request's nonce, the new login state (compare-and-swap, [`records::plan`]), a
//! denial's count against its source and the audit entry are stored in one transaction:
//! one commit, one flush to disk, per verification (with the others waiting, on SQLite).
//!
//! The compare-and-swap is what makes a code good once across requests and replicas: of two
//! requests that both accept the same code from the same stored version, only one can write
//! the next version; the other reads again, and the engine then sees the code as used. The
//! same holds for every row a decision rests on ([`Basis`]), which is what lets a
//! verification be decided on the rows the last one of its user and source read or wrote
//! ([`ReadCache`]) without reading them again.

mod cache;

pub use cache::{ReadCache, Rows, MAX_ROWS};

use std::net::IpAddr;
use std::time::Duration;

use sshield_core::ratelimit::{self, Origin};
use sshield_core::{
    check_record, check_record_trailing, Decision, DenyReason, Response, UnixTime, UserName,
};

use crate::api::{ApiError, App, VerifyRequest, VerifyResponse};
use crate::hosts::{self, Signed};
use crate::records::{self, unix, RecordError, Write};
use crate::sources;
use crate::storage::{
    AuditEntry, Basis, Committed, Storage, StorageError, UserWrite, VerificationWrites,
};

/// Decides `request`, signed as `signed` says, at `now`, and stores the decision with the
/// request's nonce in one transaction.
pub async fn verify(
    app: &App,
    signed: &Signed,
    request: &VerifyRequest,
    now: UnixTime,
) -> Result<VerifyResponse, ApiError> {
    let user = UserName::new(&request.user)
        .map_err(|e| ApiError::invalid(format!("field `user`: {e}")))?;
    let name = user.as_str();
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
    let source_key = origin.remote().filter(|_| limits.enabled);
    let reads = &app.verification_reads;
    // First the rows the last verification of this user and source left, if any; after a
    // lost race, the rows as they are now.
    let mut kept = reads.get(name, source_key);
    for _ in 0..records::MAX_TRIES {
        let rows = match kept.take() {
            Some(rows) => rows,
            None => {
                // The host's row with the others (one round trip on PostgreSQL): still
                // there, unrevoked, and holding the key the signature was checked with.
                let now_read = app
                    .store
                    .load_verification(signed.host(), source_key, name)
                    .await?;
                hosts::confirm_row(
                    app,
                    signed.host(),
                    now_read.host.as_ref(),
                    Some(&signed.key),
                )?;
                reads.put_user(name, now_read.user.clone());
                if let Some(key) = source_key {
                    reads.put_source(key, now_read.source.clone());
                }
                Rows {
                    user: now_read.user,
                    source: now_read.source,
                }
            }
        };
        let source_lock = sources::locked(rows.source.as_ref(), now.0);
        let mut basis = Basis {
            host_key: signed.key.clone(),
            user: Some((name.to_owned(), rows.user.as_ref().map(|r| r.version))),
            source: None,
        };
        let source_version = rows.source.as_ref().map(|r| r.version);
        let mut code_digits = None;
        let decided = records::plan_on(app, &user, rows.user, now, |slot| {
            let entry = Entry {
                response: &response,
                split: request.split,
            };
            let judged = decide(app, slot, entry, &origin, source_lock.is_some(), now)?;
            code_digits = judged.code_digits;
            Ok((judged.write, judged.verdict))
        });
        let (write, method, reason) = match decided {
            Ok(Ok((write, Ok(method)))) => (write, Some(method), None),
            Ok(Ok((write, Err(reason)))) => (write, None, Some(reason)),
            Ok(Err(())) => (None, None, Some("store-error")),
            Err(RecordError::Storage(e)) => return Err(e.into()),
            // A record we cannot open denies: never a reason to let in.
            Err(e @ (RecordError::Seal(_) | RecordError::Busy(_))) => {
                tracing::error!(error = %e, "verification");
                (None, None, Some("store-error"))
            }
        };
        // An allowed login rests on its source not being locked too.
        if reason.is_none() {
            basis.source = source_key.map(|key| (key.to_owned(), source_version));
        }
        let decision = Decided {
            write,
            method,
            reason,
            basis,
            // As for a user with no record: the likeliest code is 6 digits.
            code_digits: request.split.then(|| code_digits.unwrap_or(6)),
        };
        match store(app, signed, request, &origin, decision, now).await? {
            Some(answer) => return Ok(answer),
            // A row changed: forgotten, and read again.
            None => reads.forget(name, source_key),
        }
    }
    // A flood of changes of this user: denied, and stored as such (nothing of the user's).
    tracing::error!(error = %RecordError::Busy(name.to_owned()), "verification");
    let busy = Decided {
        write: None,
        method: None,
        reason: Some("busy"),
        code_digits: request.split.then_some(6),
        basis: Basis {
            host_key: signed.key.clone(),
            user: None,
            source: None,
        },
    };
    match store(app, signed, request, &origin, busy, now).await? {
        Some(answer) => Ok(answer),
        None => Err(StorageError::LostRace {
            name: name.to_owned(),
        }
        .into()),
    }
}

/// What a host sent as the code: a code, or with `split` the trailing digits of a password
/// typed with the code after it (`forward_pass`), for the engine to split by the lengths of
/// the user's codes.
#[derive(Clone, Copy)]
struct Entry<'a> {
    response: &'a Response,
    split: bool,
}

/// What the engine made of an entry.
struct Judged {
    /// Whether the record changed.
    write: Write,
    /// The method that passed, or the reason for the denial.
    verdict: Result<&'static str, &'static str>,
    /// For a split entry whose code was tried: how many of its last digits were the code.
    code_digits: Option<usize>,
}

impl Judged {
    fn denied(reason: &'static str) -> Self {
        Self {
            write: Write::Keep,
            verdict: Err(reason),
            code_digits: None,
        }
    }
}

/// The engine's decision on the user's record (`None`: not enrolled).
fn decide(
    app: &App,
    slot: &mut Option<sshield_core::UserRecord>,
    entry: Entry<'_>,
    origin: &Origin,
    source_locked: bool,
    now: UnixTime,
) -> Result<Judged, ()> {
    let limits = &app.rate_limit;
    let Some(record) = slot.as_mut() else {
        let reason = if source_locked {
            "locked"
        } else {
            "not-enrolled"
        };
        return Ok(Judged::denied(reason));
    };
    // Per (user, source) as on a host (docs/ratelimit.md): a locked bucket answers
    // "locked" without trying the code, so guessing stops there.
    if limits.enabled {
        let buckets = record.limits();
        let locked_here = source_locked && !buckets.is_familiar(origin);
        if buckets.locked(origin, now.0).is_some() || locked_here {
            return Ok(Judged::denied("locked"));
        }
    }
    // A split entry: every split tried, one decision, as for a code alone.
    let (decision, digits) = if entry.split {
        let trailing = entry.response.expose_secret();
        let (decision, digits) = check_record_trailing(record, trailing, now, &app.policy, None);
        (decision, Some(digits))
    } else {
        let decision = check_record(record, entry.response, now, &app.policy, None);
        (decision, None)
    };
    let (write, verdict) = match decision {
        Decision::Allow(method) => {
            if limits.enabled {
                record.limits().succeeded(origin, now.0, limits);
            }
            (Write::Save, Ok(method.as_str()))
        }
        Decision::Deny(reason @ (DenyReason::WrongCode | DenyReason::Replayed))
            if limits.enabled =>
        {
            record.limits().failed(origin, now.0, limits);
            (Write::Save, Err(reason.as_str()))
        }
        Decision::Deny(reason) => (Write::Keep, Err(reason.as_str())),
    };
    Ok(Judged {
        write,
        verdict,
        code_digits: digits,
    })
}

/// One decision, to store: the user's new row if it changed, the method that passed or the
/// reason for the denial, and the rows it rests on.
struct Decided {
    write: Option<UserWrite>,
    method: Option<&'static str>,
    reason: Option<&'static str>,
    basis: Basis,
    /// For a split entry: how many of its last digits were the code.
    code_digits: Option<usize>,
}

/// Stores one decision (the user's write, the source's failure for a denial, the audit
/// entry, the nonce) in one transaction, if the rows it rests on are still as read: the
/// answer, or `None` if one changed (nothing stored: read again and decide again). What it
/// stored is kept for the next verification of the user and source ([`ReadCache`]).
async fn store(
    app: &App,
    signed: &Signed,
    request: &VerifyRequest,
    origin: &Origin,
    decided: Decided,
    now: UnixTime,
) -> Result<Option<VerifyResponse>, ApiError> {
    let Decided {
        write,
        method,
        reason,
        basis,
        code_digits,
    } = decided;
    let limits = &app.rate_limit;
    let audit = AuditEntry {
        time: unix(now),
        host: signed.host().to_owned(),
        user: request.user.clone(),
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
    // As on a host: every denial counts against its source.
    let source = match (reason, origin.remote()) {
        (Some(_), Some(key)) if limits.enabled => Some(sources::failure(app, key, now.0)),
        _ => None,
    };
    // The user's row as it will be if this is stored.
    let user_after = match &write {
        Some(UserWrite::Update(row) | UserWrite::Create(row)) => {
            Some((row.name.clone(), Some(row.clone())))
        }
        Some(UserWrite::Delete(name)) => Some((name.clone(), None)),
        None => None,
    };
    let counted = source.as_ref().map(|failure| failure.source.clone());
    let writes = VerificationWrites {
        nonce: signed.nonce.clone(),
        user: write,
        source,
        audit,
        basis,
    };
    let source_failures = match app.store.commit_verification(writes).await? {
        Committed::Stored { source_failures } => source_failures,
        Committed::NonceUsed => return Err(hosts::replayed(signed.host())),
        Committed::LostRace => return Ok(None),
    };
    let reads = &app.verification_reads;
    if let Some((name, row)) = user_after {
        reads.put_user(&name, row);
    }
    if let Some(key) = counted {
        reads.forget_source(&key);
    }
    let outcome = if reason.is_none() {
        AuditEntry::ALLOWED
    } else {
        AuditEntry::DENIED
    };
    app.metrics.verification(outcome, reason);
    // The host waits, not the server (sshield_wire::api::VerifyResponse::delay_ms).
    let delay_ms = reason.map(|reason| {
        let delay = failure_delay(app, origin, reason, source_failures);
        u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)
    });
    Ok(Some(VerifyResponse {
        outcome: outcome.to_owned(),
        method: method.map(str::to_owned),
        reason: reason.map(str::to_owned),
        delay_ms,
        code_digits: code_digits.and_then(|d| u8::try_from(d).ok()),
    }))
}

/// As on a host: every denial counts against its source, and the pause before the user hears
/// of it (the host's to make) grows with the source's count alone (`delay`, doubling, at
/// most 8 times), so enrolled and unenrolled names, wrong codes and locks all answer alike.
/// No source: `delay`. A store error waits the longest delay.
fn failure_delay(
    app: &App,
    origin: &Origin,
    reason: &str,
    source_failures: Option<u32>,
) -> Duration {
    let limits = &app.rate_limit;
    let count = match origin.remote() {
        _ if !limits.enabled => 0,
        None => 1,
        Some(_) => source_failures.unwrap_or(u32::MAX),
    };
    if reason == "store-error" {
        ratelimit::longest_delay(limits)
    } else {
        ratelimit::delay_after(count, limits)
    }
}
