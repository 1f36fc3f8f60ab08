//! The admin's subcommands (`user ...`), run against the database directly with the same
//! config as the server, and what they print.

use std::fmt::Write as _;

use qrcode::render::unicode;
use qrcode::{EcLevel, QrCode};
use sshield_core::{Response, UnixTime, UserName};
use zeroize::Zeroizing;

use crate::api::App;
use crate::cli::{AuditArgs, HostCommand, PushCommand, UserCommand};
use crate::push::approval::{add_device, random_token, subscription_of, token_hash};
use crate::push::notice::Payload;
use crate::push::webhook::Webhook;
use crate::push::webpush::Endpoint;
use crate::push::Urgency;
use crate::records::unix;
use crate::storage::{AuditQuery, PushStorage, Storage, WebhookRow};
use crate::{hosts, users};

fn user_name(name: &str) -> Result<UserName, String> {
    UserName::new(name).map_err(|e| format!("user name {name:?}: {e}"))
}

/// Runs one `user` subcommand; its output, or the message for the admin.
pub async fn user(app: &App, command: UserCommand) -> Result<String, String> {
    let now = UnixTime::now();
    let err = |e: users::UserError| e.to_string();
    let mut out = String::new();
    match command {
        UserCommand::Enroll { name, no_qr } => {
            let user = user_name(&name)?;
            let enrolled = users::enroll(app, &user, now).await.map_err(err)?;
            let _ = writeln!(out, "Scan this into the authenticator app of {name}:");
            if !no_qr {
                out.push_str(&terminal_qr(&enrolled.uri)?);
                out.push('\n');
            }
            let _ = writeln!(out, "{}", enrolled.uri.as_str());
            out.push_str(&backup_list(&enrolled.backup_codes));
            let _ = writeln!(
                out,
                "Then confirm with the code the app shows: sshield-server user confirm {name} CODE"
            );
        }
        UserCommand::Confirm { name, code } => {
            let user = user_name(&name)?;
            let code = Response::new(&code);
            let which = users::confirm(app, &user, &code, None, now)
                .await
                .map_err(err)?;
            let _ = writeln!(out, "{name}: authenticator {which:?} confirmed and active");
        }
        UserCommand::BackupCodes { name } => {
            let user = user_name(&name)?;
            let codes = users::renew_backup_codes(app, &user, now)
                .await
                .map_err(err)?;
            out.push_str(&backup_list(&codes));
        }
        UserCommand::Disable { name } => {
            let user = user_name(&name)?;
            let changed = users::set_disabled(app, &user, true, now)
                .await
                .map_err(err)?;
            let _ = writeln!(out, "{name}: second factor {}disabled", already(changed));
        }
        UserCommand::Enable { name } => {
            let user = user_name(&name)?;
            let changed = users::set_disabled(app, &user, false, now)
                .await
                .map_err(err)?;
            let _ = writeln!(out, "{name}: second factor {}enabled", already(changed));
        }
        UserCommand::Remove { name } => {
            let user = user_name(&name)?;
            users::remove(app, &user, now).await.map_err(err)?;
            let _ = writeln!(out, "{name}: removed");
        }
        UserCommand::List => {
            for row in users::list(app).await.map_err(err)? {
                let state = if row.disabled { "disabled" } else { &row.state };
                let _ = writeln!(out, "{}\t{state}", row.name);
            }
        }
        UserCommand::Import { from_sshield } => {
            let document = users::read_sshield_export(&from_sshield).map_err(err)?;
            let names = users::import_records(app, &document.users, now)
                .await
                .map_err(err)?;
            let _ = writeln!(
                out,
                "imported {} user(s) from host {:?}: {}",
                names.len(),
                document.host,
                names.join(", ")
            );
        }
        UserCommand::ImportUsersOath { file } => {
            let plan = users::read_users_oath(&file, now).map_err(err)?;
            out.push_str(&imported(app, &plan, now).await?);
        }
        UserCommand::ImportGoogleAuthenticator { name, file } => {
            let user = user_name(&name)?;
            let plan = users::read_google_authenticator(&file, &user, now).map_err(err)?;
            out.push_str(&imported(app, &plan, now).await?);
        }
    }
    Ok(out)
}

fn already(changed: bool) -> &'static str {
    if changed {
        ""
    } else {
        "was already "
    }
}

async fn imported(
    app: &App,
    plan: &sshield_core::import::ImportPlan,
    now: UnixTime,
) -> Result<String, String> {
    let names = users::import(app, plan, now)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    for note in &plan.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(
        out,
        "imported {} user(s): {}",
        names.len(),
        names.join(", ")
    );
    Ok(out)
}

fn backup_list(codes: &[Zeroizing<String>]) -> String {
    let mut out = String::from("Backup codes (each works once; shown only now):\n");
    for code in codes {
        let _ = writeln!(out, "  {}", code.as_str());
    }
    out
}

/// The URI as a QR code of half-block characters, as `sshield enroll` draws it: dark modules
/// drawn as spaces on a light background scan on light and dark terminal themes alike.
fn terminal_qr(uri: &str) -> Result<String, String> {
    Ok(
        QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
            .map_err(|e| format!("cannot draw a QR code for this URI: {e}"))?
            .render::<unicode::Dense1x2>()
            .dark_color(unicode::Dense1x2::Light)
            .light_color(unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// Where hosts reach this server, for the `sshield join` line `host add` prints: the listen
/// address, and the SHA-256 of the TLS certificate hosts should pin (None: plain HTTP).
#[derive(Debug, Clone)]
pub struct JoinHint {
    /// The server's listen address (its port, and its IP when it is a specific one).
    pub listen: std::net::SocketAddr,
    /// The certificate's pin, `sha256:HEX`, when the server serves TLS.
    pub pin: Option<String>,
}

impl JoinHint {
    /// From the settings: reads the first certificate of `tls_cert`, if any.
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        use sha2::{Digest, Sha256};
        let pin = match &settings.tls {
            None => None,
            Some((cert, _)) => {
                let der = CertificateDer::pem_file_iter(cert)
                    .and_then(|mut certs| certs.next().transpose())
                    .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?
                    .ok_or_else(|| format!("{} holds no certificate", cert.display()))?;
                let digest: [u8; 32] = Sha256::digest(der.as_ref()).into();
                Some(format!(
                    "sha256:{}",
                    data_encoding::HEXLOWER.encode(&digest)
                ))
            }
        };
        Ok(Self {
            listen: settings.listen,
            pin,
        })
    }

    /// The command to run on the host.
    fn command(&self, token: &str, name: &str) -> String {
        let (ip, port) = (self.listen.ip(), self.listen.port());
        match &self.pin {
            Some(pin) => {
                // Listening on every address: the admin knows the name hosts use.
                let server = if ip.is_unspecified() {
                    format!("SERVER:{port}")
                } else {
                    self.listen.to_string()
                };
                format!("sshield join https://{server} {token} --name {name} --fingerprint {pin}")
            }
            None => format!("sshield join http://{} {token} --name {name}", self.listen),
        }
    }
}

/// Runs one `host` subcommand; its output, or the message for the admin. `hint` (where hosts
/// reach this server) makes `host add` print the whole `sshield join` line to run on the host.
pub async fn host(
    app: &App,
    command: HostCommand,
    hint: Option<&JoinHint>,
) -> Result<String, String> {
    let now = UnixTime::now();
    let err = |e: hosts::HostError| e.to_string();
    let mut out = String::new();
    match command {
        HostCommand::Add { name } => {
            let token = hosts::add(app, &name, now).await.map_err(err)?;
            let minutes = app.join_token_ttl.as_secs() / 60;
            let _ = writeln!(out, "{token}");
            let _ = writeln!(
                out,
                "Join token for host {name:?}: valid once, for {minutes} minutes."
            );
            if let Some(hint) = hint {
                let _ = writeln!(
                    out,
                    "On the host, as root:\n  {}",
                    hint.command(&token, &name)
                );
                if hint.pin.is_some() {
                    let _ = writeln!(
                        out,
                        "(--fingerprint pins this server's certificate: without it, the host would \
                         trust the first certificate it is shown.)"
                    );
                } else {
                    let _ = writeln!(
                        out,
                        "(Plain HTTP: only for a server on the host's own loopback; serve TLS \
                         with tls_cert and tls_key for other hosts.)"
                    );
                }
            }
        }
        HostCommand::List => {
            for row in hosts::list(app).await.map_err(err)? {
                let when = |t: i64| UnixTime(u64::try_from(t).unwrap_or(0)).to_rfc3339();
                let state = match row.revoked_at {
                    Some(t) => format!("revoked {}", when(t)),
                    None => "active".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "{}\tjoined {}\t{state}",
                    row.name,
                    when(row.created_at)
                );
            }
        }
        HostCommand::Revoke { name } => {
            hosts::revoke(app, &name, now).await.map_err(err)?;
            let _ = writeln!(out, "{name}: revoked");
        }
    }
    Ok(out)
}

/// Runs one `push` subcommand; its output, or the message for the admin.
pub async fn push(app: &App, command: PushCommand) -> Result<String, String> {
    let now = unix(UnixTime::now());
    let db = |e: crate::storage::StorageError| e.to_string();
    let known = |user: String| async move {
        let name = user_name(&user)?;
        match app.store.load_user(name.as_str()).await.map_err(db)? {
            Some(_) => Ok(user),
            None => Err(format!(
                "no user {user:?} on this server; enroll them first with `sshield-server user enroll {user}`"
            )),
        }
    };
    let mut out = String::new();
    match command {
        PushCommand::AddDevice { user, name } => {
            let user = known(user).await?;
            let (device, token) = add_device(app, &user, &name, now)
                .await
                .map_err(|e| e.message)?;
            let id = device.id;
            let _ = writeln!(out, "{}", token.as_str());
            let _ = writeln!(
                out,
                "Device {id} ({name:?}) of {user}: its token, shown only now, is the line above."
            );
        }
        PushCommand::EnrollLink { user } => {
            let user = known(user).await?;
            let token = random_token(32).map_err(|e| e.message)?;
            let ttl = app.push.settings.enroll_link_ttl;
            let expires = now + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
            app.store
                .add_enroll_link(&token_hash(&token), &user, now, expires)
                .await
                .map_err(db)?;
            // The token rides in the fragment: browsers send no fragment to the server, so
            // it stays out of access logs and Referer headers.
            let _ = writeln!(
                out,
                "{}/enroll#{}",
                app.push.settings.public_url,
                token.as_str()
            );
            let _ = writeln!(
                out,
                "Enrollment link for {user}: open it on the phone; valid once, for {}.",
                humantime::format_duration(ttl)
            );
        }
        PushCommand::Devices { user } => {
            for d in app.store.list_devices(&user).await.map_err(db)? {
                let when = |t: i64| UnixTime(u64::try_from(t).unwrap_or(0)).to_rfc3339();
                let state = d
                    .revoked_at
                    .map_or_else(|| "active".to_owned(), |t| format!("revoked {}", when(t)));
                let subscribed = if d.data == "{}" {
                    "no subscription"
                } else {
                    "subscribed"
                };
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{subscribed}\tadded {}\t{state}",
                    d.id,
                    d.kind,
                    d.name,
                    when(d.created_at)
                );
            }
        }
        PushCommand::RevokeDevice { user, id } => {
            if !app.store.revoke_device(&user, &id, now).await.map_err(db)? {
                return Err(format!(
                    "user {user:?} has no device {id:?}; see `sshield-server push devices {user}`"
                ));
            }
            let _ = writeln!(out, "{user}: device {id} revoked");
        }
        PushCommand::SetWebhook { user, url } => {
            let user = known(user).await?;
            Endpoint::parse(&url, "url").map_err(|e| e.to_string())?;
            let secret = Webhook::new_secret().map_err(|e| e.to_string())?;
            app.store
                .set_webhook(
                    &user,
                    &WebhookRow {
                        url: url.clone(),
                        secret: secret.as_bytes().to_vec(),
                    },
                )
                .await
                .map_err(db)?;
            let _ = writeln!(out, "{}", secret.as_str());
            let _ = writeln!(
                out,
                "Webhook of {user}: {url}. The line above is the HMAC secret its receiver checks \
                 X-Sshield-Signature with (docs/push.md); shown only now."
            );
        }
        PushCommand::RemoveWebhook { user } => {
            let removed = app.store.delete_webhook(&user).await.map_err(db)?;
            let _ = writeln!(out, "{user}: webhook {}removed", already(removed));
        }
        PushCommand::Test { user } => {
            let user = known(user).await?;
            let payload = Payload::test(&user, &app.push.settings.public_url, now).to_json();
            let notifier = &app.push.notifier;
            let ttl = app.push.settings.approval_ttl;
            let mut sent = 0;
            for device in app.store.list_devices(&user).await.map_err(db)? {
                if device.revoked_at.is_some() {
                    continue;
                }
                let Some(subscription) = subscription_of(&device) else {
                    let _ = writeln!(out, "device {}: not subscribed", device.id);
                    continue;
                };
                let delivery = notifier
                    .push(&subscription, &payload, ttl, Urgency::Normal)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = writeln!(out, "device {}: {delivery}", device.id);
                sent += 1;
            }
            if let Some(hook) = app.store.load_webhook(&user).await.map_err(db)? {
                let hook = Webhook::new(&hook.url, hook.secret).map_err(|e| e.to_string())?;
                let delivery = notifier.webhook(&hook, &payload).await;
                let _ = writeln!(out, "webhook {}: {delivery}", hook.url.as_str());
                sent += 1;
            }
            if sent == 0 {
                return Err(format!(
                    "{user} has no subscribed device and no webhook: open an enrollment link \
                     (`sshield-server push enroll-link {user}`) or set a webhook"
                ));
            }
        }
        PushCommand::Unblock { user } => {
            let cleared = app.store.clear_push_block(&user).await.map_err(db)?;
            let _ = writeln!(out, "{user}: pushes {}allowed", already(cleared));
        }
    }
    Ok(out)
}

/// Runs `audit`: one line per decision, newest first.
pub async fn audit(app: &App, args: AuditArgs) -> Result<String, String> {
    // The same filter as a host's `GET /v1/audit` (and `sshield log` on a fleet host).
    let filter = sshield_wire::offline::AuditFilter {
        since: args.since.map(|span| span.as_secs()),
        ..Default::default()
    };
    let since = filter.cutoff(unix(UnixTime::now()));
    let query = AuditQuery {
        user: args.user,
        host: args.host,
        since,
        failed_only: args.failed,
        limit: i64::from(args.limit),
    };
    let entries = app
        .store
        .query_audit(&query)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    for e in entries {
        let time = UnixTime(u64::try_from(e.time).unwrap_or(0)).to_rfc3339();
        if args.json {
            let line = serde_json::json!({
                "time": time, "host": e.host, "user": e.user, "source": e.source,
                "service": e.service, "method": e.method, "outcome": e.outcome,
                "reason": e.reason,
            });
            let _ = writeln!(out, "{line}");
        } else {
            let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
            let how = if e.outcome == crate::storage::AuditEntry::ALLOWED {
                dash(e.method)
            } else {
                dash(e.reason)
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
