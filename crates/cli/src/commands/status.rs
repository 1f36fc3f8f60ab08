//! `sshield status`: who is enrolled, how, and their last use.

use std::io::{self, BufWriter, Write};

use serde::Serialize;
use sshield_core::{StoreError, UnixTime, UserName, UserRecord};

use super::{user_name, Context};
use crate::failure::Failure;

#[derive(Serialize)]
struct Row {
    user: String,
    state: String,
    authenticators: Vec<AuthRow>,
    backup_codes_left: usize,
    last_success: Option<String>,
    last_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct AuthRow {
    name: String,
    kind: String,
    active: bool,
    last_used: Option<String>,
}

pub(crate) fn run(ctx: &Context, user: Option<&str>, json: bool) -> Result<(), Failure> {
    let users: Vec<UserName> = match user {
        Some(u) => vec![user_name(u)?],
        None => match ctx.store.users() {
            // A fresh host, before the first `enroll` creates the store: nobody is enrolled.
            Err(StoreError::DirMissing { .. }) => Vec::new(),
            other => other?,
        },
    };
    let rows = rows(ctx, &users)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(Failure::error)?
        );
    } else if rows.is_empty() {
        println!(
            "No users are enrolled in {} (sshield enroll USER).",
            ctx.store.dir().display()
        );
    } else {
        match print_table(&rows) {
            // `sshield status | head`: the reader has what it wanted.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
            other => other.map_err(|e| Failure::Error(format!("cannot write the table: {e}")))?,
        }
    }
    match rows.iter().find_map(|r| r.error.as_ref()) {
        Some(e) => Err(Failure::Error(format!("a record could not be read: {e}"))),
        None => Ok(()),
    }
}

/// Below this many users one thread reads them all; above, the records (one file each, read
/// and parsed) are shared out over the CPUs, in order.
const PARALLEL_FROM: usize = 128;

fn rows(ctx: &Context, users: &[UserName]) -> Result<Vec<Row>, Failure> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if users.len() < PARALLEL_FROM || threads < 2 {
        return users.iter().map(|u| row(ctx, u)).collect();
    }
    let chunk = users.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = users
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|u| row(ctx, u)).collect::<Vec<_>>()))
            .collect();
        let mut out = Vec::with_capacity(users.len());
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| Failure::Error("a thread reading records failed".into()))?;
            for row in part {
                out.push(row?);
            }
        }
        Ok(out)
    })
}

fn row(ctx: &Context, user: &UserName) -> Result<Row, Failure> {
    let time = |t: Option<u64>| t.map(|s| UnixTime(s).to_rfc3339());
    match ctx.store.load(user) {
        Ok(Some(record)) => Ok(summary(&record, time)),
        Ok(None) if ctx.store.users()?.is_empty() || !ctx.store.users()?.contains(user) => Err(
            Failure::Error(format!("{user} is not enrolled (sshield enroll {user})")),
        ),
        Ok(None) => Err(Failure::Error(format!("{user} is not enrolled"))),
        // One broken record is reported in its row; the others are still shown.
        Err(e) => Ok(Row {
            user: user.to_string(),
            state: "error".into(),
            authenticators: vec![],
            backup_codes_left: 0,
            last_success: None,
            last_method: None,
            error: Some(e.to_string()),
        }),
    }
}

fn summary(record: &UserRecord, time: impl Fn(Option<u64>) -> Option<String>) -> Row {
    Row {
        user: record.user.clone(),
        state: record.state().as_str().into(),
        authenticators: record
            .authenticators
            .iter()
            .map(|a| AuthRow {
                name: a.name.clone(),
                kind: a.kind.as_str().into(),
                active: a.active,
                last_used: time(record.token_usage(&a.name).last_used),
            })
            .collect(),
        backup_codes_left: record.backup.remaining(&record.usage.backup_used),
        last_success: time(record.usage.last_success),
        last_method: record.usage.last_method.clone(),
        error: None,
    }
}

/// One write for the whole table, not one per line: with a thousand users, line-buffered
/// stdout made a thousand write(2) calls.
fn print_table(rows: &[Row]) -> io::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    let width = rows.iter().map(|r| r.user.len()).max().unwrap_or(4).max(4);
    writeln!(
        out,
        "{:width$}  {:8}  {:30}  {:6}  LAST LOGIN",
        "USER", "STATE", "AUTHENTICATORS", "BACKUP"
    )?;
    for r in rows {
        if let Some(e) = &r.error {
            writeln!(out, "{:width$}  {:8}  {e}", r.user, r.state)?;
            continue;
        }
        let auths: Vec<String> = r
            .authenticators
            .iter()
            .map(|a| {
                format!(
                    "{} ({}{})",
                    a.name,
                    a.kind,
                    if a.active { "" } else { ", pending" }
                )
            })
            .collect();
        let last = match (&r.last_success, &r.last_method) {
            (Some(t), Some(m)) => format!("{t} ({m})"),
            (Some(t), None) => t.clone(),
            _ => "never".into(),
        };
        writeln!(
            out,
            "{:width$}  {:8}  {:30}  {:6}  {last}",
            r.user,
            r.state,
            auths.join(", "),
            r.backup_codes_left
        )?;
    }
    out.flush()
}
