//! `sshield log`: this host's recent second-factor decisions, newest first. On a fleet host,
//! the server's audit of it ([`super::log_fleet`]); with `--local`, or on a lone host, read back from
//! where the front ends wrote them — the config's `log_file`, a syslog file named with `--file`,
//! or else the systemd journal (root's authpriv entries only). Seed 002 does this by hand with
//! `lastb -a` and grep; the decision lines carry user, source, service, method and reason.

use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sshield_core::log::Decided;
use sshield_core::{Config, UnixTime};

use crate::cli::LogArgs;
use crate::failure::Failure;

/// One decision, when and where it was logged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    /// Unix seconds.
    time: u64,
    host: String,
    decided: Decided,
}

/// Where the lines come from.
enum Source<'a> {
    File(&'a Path),
    Journal,
}

pub(crate) fn run(config_path: &Path, args: &LogArgs) -> Result<(), Failure> {
    let config = Config::load(config_path)?;
    if let (Some(server), false) = (&config.server, args.local) {
        let text = super::log_fleet::read(server, args)?;
        return print(&text);
    }
    let since = args
        .since
        .map(|span| UnixTime::now().0.saturating_sub(span.as_secs()));
    let source = match (&args.file, &config.log_file) {
        (Some(file), _) | (None, Some(file)) => Source::File(file),
        (None, None) => Source::Journal,
    };
    let (mut rows, untimed) = match source {
        Source::File(path) => read_file(path)?,
        Source::Journal => (read_journal(since)?, 0),
    };
    rows.retain(|r| {
        args.user.as_ref().is_none_or(|u| &r.decided.user == u)
            && args.host.as_ref().is_none_or(|h| &r.host == h)
            && since.is_none_or(|s| r.time >= s)
            && !(args.failed && r.decided.allowed)
    });
    // Newest first; lines logged in the same second keep the log's order, newest first too.
    rows.reverse();
    rows.sort_by_key(|r| std::cmp::Reverse(r.time));
    let text = if args.summary {
        summary(&rows, args.json)
    } else {
        rows.truncate(args.limit);
        listing(&rows, args.json)
    };
    print(&text)?;
    if untimed > 0 {
        eprintln!(
            "sshield: note: {untimed} decision line(s) without an RFC 3339 time were left out \
             (syslog's traditional format); read the journal or the config's log_file instead"
        );
    }
    Ok(())
}

/// Writes the listing to stdout.
fn print(text: &str) -> Result<(), Failure> {
    match io::stdout().lock().write_all(text.as_bytes()) {
        // `sshield log | head`: the reader has what it wanted.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| Failure::Error(format!("cannot write the output: {e}"))),
    }
}

/// A syslog-style text file: `TIME HOST PROGRAM[PID]: MESSAGE`, as `log_file` and Debian 12's
/// rsyslog write it. Returns the rows and how many decision lines had no time it could read.
fn read_file(path: &Path) -> Result<(Vec<Row>, usize), Failure> {
    let file = std::fs::File::open(path).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::PermissionDenied {
            " (the log is root's: run as root)"
        } else {
            ""
        };
        Failure::Error(format!("cannot read {}: {e}{hint}", path.display()))
    })?;
    let mut rows = Vec::new();
    let mut untimed = 0;
    for (number, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| {
            Failure::Error(format!(
                "cannot read {}:{}: {e}",
                path.display(),
                number + 1
            ))
        })?;
        let line = String::from_utf8_lossy(&line);
        // The message starts after the first `PROGRAM[PID]: `, before anything a client chose.
        let Some(decided) = line
            .split_once("]: ")
            .and_then(|(_, message)| Decided::parse(message))
        else {
            continue;
        };
        let mut header = line.split(' ');
        match (header.next().and_then(parse_rfc3339), header.next()) {
            (Some(time), Some(host)) => rows.push(Row {
                time,
                host: host.to_owned(),
                decided,
            }),
            _ => untimed += 1,
        }
    }
    Ok((rows, untimed))
}

/// `2026-12-04T21:40:07Z`, `2026-12-04T21:40:07.123456+01:00`: Unix seconds.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let (local, offset) = match text.strip_suffix('Z') {
        Some(local) => (local, 0i64),
        None => {
            let (local, zone) = text.split_at(text.len().checked_sub(6)?);
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, minutes) = zone.get(1..)?.split_once(':')?;
            let minutes = hours.parse::<i64>().ok()? * 60 + minutes.parse::<i64>().ok()?;
            (local, sign * minutes * 60)
        }
    };
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    let seconds = i64::try_from(local.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
    u64::try_from(seconds.checked_sub(offset)?).ok()
}

/// Root's authpriv entries in the journal (`_UID=0 SYSLOG_FACILITY=10`): a local user can
/// write to syslog under any tag, but not as uid 0.
fn read_journal(since: Option<u64>) -> Result<Vec<Row>, Failure> {
    let mut command = Command::new("journalctl");
    command.args([
        "--output=json",
        "--no-pager",
        "--quiet",
        "_UID=0",
        "SYSLOG_FACILITY=10",
    ]);
    if let Some(since) = since {
        command.arg(format!("--since=@{since}"));
    }
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            Failure::Error(format!(
                "no log to read: the config sets no log_file, and journalctl cannot run ({e}); \
                 name a syslog file, e.g. sshield log --file /var/log/auth.log"
            ))
        })?;
    if !output.status.success() {
        return Err(Failure::Error(format!(
            "journalctl failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output
        .stdout
        .split(|&b| b == b'\n')
        .filter_map(journal_row)
        .collect())
}

/// One `journalctl --output=json` entry, if it is a decision: a `pam_sshield(...)` message from
/// any program (sshd, sudo), or a bare decision line from `sshield` itself.
fn journal_row(entry: &[u8]) -> Option<Row> {
    let entry: serde_json::Value = serde_json::from_slice(entry).ok()?;
    let field = |name: &str| entry.get(name).and_then(serde_json::Value::as_str);
    let message = field("MESSAGE")?;
    if !message.starts_with("pam_sshield(") && field("SYSLOG_IDENTIFIER") != Some("sshield") {
        return None;
    }
    let micros: u64 = field("__REALTIME_TIMESTAMP")?.parse().ok()?;
    Some(Row {
        time: micros / 1_000_000,
        host: field("_HOSTNAME").unwrap_or("-").to_owned(),
        decided: Decided::parse(message)?,
    })
}

fn outcome(d: &Decided) -> &'static str {
    if d.allowed {
        "allowed"
    } else {
        "denied"
    }
}

fn rfc3339(time: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(time))
        .to_string()
}

/// One line per decision, in `sshield-server audit`'s format: time, host, user, source,
/// service, outcome, then the method of an allowed login or the reason of a denied one.
fn listing(rows: &[Row], json: bool) -> String {
    let mut out = String::new();
    for r in rows {
        let d = &r.decided;
        let source = d.rhost.as_deref();
        let line = if json {
            json!({
                "time": rfc3339(r.time), "host": r.host, "user": d.user, "source": source,
                "service": d.service, "method": d.allowed.then_some(&d.method),
                "outcome": outcome(d), "reason": (d.reason != "ok").then_some(&d.reason),
            })
            .to_string()
        } else {
            let how = match (d.allowed, d.reason.as_str()) {
                (true, "ok") => d.method.clone(),
                (true, why) => format!("{}:{why}", d.method),
                (false, why) => why.to_owned(),
            };
            format!(
                "{} {} {} {} {} {} {how}",
                rfc3339(r.time),
                r.host,
                d.user,
                source.unwrap_or("-"),
                d.service,
                outcome(d)
            )
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Per user and source: how many allowed and denied, and the last decision (`lastb -a`'s
/// question: who is being tried, from where).
fn summary(rows: &[Row], json: bool) -> String {
    struct Tally<'a> {
        user: &'a str,
        source: Option<&'a str>,
        allowed: usize,
        denied: usize,
        last: &'a Row,
    }
    let mut tallies: Vec<Tally<'_>> = Vec::new();
    // `rows` is newest first, so the first row of a pair is its last decision.
    for r in rows {
        let (user, source) = (r.decided.user.as_str(), r.decided.rhost.as_deref());
        let i = match tallies
            .iter()
            .position(|t| t.user == user && t.source == source)
        {
            Some(i) => i,
            None => {
                tallies.push(Tally {
                    user,
                    source,
                    allowed: 0,
                    denied: 0,
                    last: r,
                });
                tallies.len() - 1
            }
        };
        if r.decided.allowed {
            tallies[i].allowed += 1;
        } else {
            tallies[i].denied += 1;
        }
    }
    tallies.sort_by(|a, b| b.denied.cmp(&a.denied).then(b.last.time.cmp(&a.last.time)));
    let mut out = String::new();
    if !json {
        out.push_str("USER SOURCE ALLOWED DENIED LAST\n");
    }
    for t in &tallies {
        let last = format!("{} {}", rfc3339(t.last.time), outcome(&t.last.decided));
        let line = if json {
            json!({
                "user": t.user, "source": t.source, "allowed": t.allowed, "denied": t.denied,
                "last_time": rfc3339(t.last.time), "last_outcome": outcome(&t.last.decided),
            })
            .to_string()
        } else {
            format!(
                "{} {} {} {} {last}",
                t.user,
                t.source.unwrap_or("-"),
                t.allowed,
                t.denied
            )
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_with_and_without_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:10Z"), Some(10));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:10.123456+01:00"), Some(10));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:10-00:30"), Some(1810));
        assert_eq!(parse_rfc3339("Dec"), None);
        assert_eq!(parse_rfc3339("2026-12-04T21:40:07+0100"), None);
    }

    #[test]
    fn a_journal_entry_counts_only_from_the_module_or_sshield_itself() {
        let entry = |id: &str, message: &str| {
            json!({
                "MESSAGE": message, "SYSLOG_IDENTIFIER": id, "_HOSTNAME": "web1",
                "__REALTIME_TIMESTAMP": "1764884407123456",
            })
            .to_string()
        };
        let line = "allow user=alice rhost=192.0.2.9 service=sshd method=totp reason=ok";
        let pam = journal_row(entry("sshd", &format!("pam_sshield(sshd:auth): {line}")).as_bytes());
        assert_eq!(
            pam.as_ref().map(|r| (r.time, r.host.as_str())),
            Some((1_764_884_407, "web1"))
        );
        assert!(journal_row(entry("sshield", line).as_bytes()).is_some());
        assert_eq!(journal_row(entry("sshd", line).as_bytes()), None);
        assert_eq!(journal_row(b"{not json"), None);
    }
}
