//! `sshield log` on a host that joined a fleet: the server's audit of this host (`GET
//! /v1/audit`, signed with the host's key, so root only), which holds every decision the
//! server made for it and the offline uses and `failmode` decisions it reported. The server
//! answers a host about itself alone: one host's root must not learn where else the fleet's
//! users log in. `--local` reads this host's own logs instead.

use std::fmt::Write as _;

use serde_json::json;
use sshield_core::fleet::ServerConfig;
use sshield_core::UnixTime;
use sshield_wire::offline::{valid_query_word, AuditFilter, AuditLines, AUDIT_PATH};

use crate::cli::LogArgs;
use crate::failure::Failure;
use crate::fleet::client::{Failed, ServerClient};

/// The server's entries for this host, as `sshield log` prints them.
pub(crate) fn read(server: &ServerConfig, args: &LogArgs) -> Result<String, Failure> {
    if args.summary {
        return Err(Failure::Error(
            "--summary counts this host's own log lines; add --local".to_owned(),
        ));
    }
    if let Some(host) = args.host.as_ref().filter(|h| **h != server.host) {
        return Err(Failure::Error(format!(
            "--host {host}: a fleet host reads the server's audit of itself ({}) only; ask the \
             server's admin (sshield-server audit --host {host}), or add --local for this \
             host's own logs",
            server.host
        )));
    }
    if let Some(user) = args.user.as_ref().filter(|u| !valid_query_word(u)) {
        return Err(Failure::Error(format!(
            "--user {user:?} is not a user name"
        )));
    }
    let filter = AuditFilter {
        user: args.user.clone(),
        since: args.since.map(|s| s.as_secs()),
        failed: args.failed,
        limit: Some(u32::try_from(args.limit.clamp(1, 1000)).unwrap_or(1000)),
    };
    let client = ServerClient::new(server).map_err(Failure::Error)?;
    let query = filter.to_query();
    let path = if query.is_empty() {
        AUDIT_PATH.to_owned()
    } else {
        format!("{AUDIT_PATH}?{query}")
    };
    let text = client.get(&path).map_err(|e| match e {
        Failed::Unreachable(what) => Failure::Error(format!(
            "no server answered ({what}); `sshield log --local` reads this host's own logs"
        )),
        Failed::Refused(what) => Failure::Error(what),
    })?;
    let lines: AuditLines = serde_json::from_str(&text)
        .map_err(|e| Failure::Error(format!("the server's answer is not an audit listing: {e}")))?;
    let mut out = String::new();
    for e in lines.entries {
        let time = UnixTime(u64::try_from(e.time).unwrap_or(0)).to_rfc3339();
        if args.json {
            let line = json!({
                "time": time, "host": e.host, "user": e.user, "source": e.source,
                "service": e.service, "method": e.method, "outcome": e.outcome,
                "reason": e.reason.filter(|r| r != "ok"),
            });
            let _ = writeln!(out, "{line}");
        } else {
            let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
            let how = match (e.method, e.reason) {
                (Some(method), None) => method,
                (Some(method), Some(r)) if r == "ok" => method,
                (Some(method), Some(r)) => format!("{method}:{r}"),
                (None, reason) => dash(reason),
            };
            let _ = writeln!(
                out,
                "{time} {} {} {} {} {} {how}",
                e.host,
                e.user,
                dash(e.source),
                e.service,
                e.outcome
            );
        }
    }
    Ok(out)
}
