//! `sshield-server serve`: open the state, bind, and answer HTTP until SIGTERM or Ctrl-C.
//!
//! Plain HTTP is served on a loopback address only: hosts send the codes users type, and on
//! any other address they would cross the network in the clear (a TLS-terminating proxy in
//! front, on the same machine, is the loopback case).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;

use crate::api::{self, App};
use crate::config::{Retention, Settings};
use crate::metrics::{self, Metrics};
use crate::push::approval::{self, Push};
use crate::push::webhook::Webhook;
use crate::push::webpush::{VapidKey, WebPushError, VAPID_KEY_FILE};
use crate::push::Notifier;
use crate::records::unix;
use crate::seal::{SealError, SealKey, KEY_FILE};
use crate::sources;
use crate::storage::{Backend, OfflineStorage, Storage, StorageError};
use sshield_core::UnixTime;

/// Why the server could not start.
#[derive(Debug)]
pub enum ServeError {
    /// Plain HTTP on an address other machines can reach.
    PlainHttpNotLoopback(SocketAddr),
    /// The state dir could not be made.
    StateDir {
        /// Its path.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The record key.
    Key(SealError),
    /// The VAPID key (Web Push).
    Push(WebPushError),
    /// The HTTP client for Web Push and webhooks could not be made.
    Notifier(String),
    /// The database.
    Storage(StorageError),
    /// The address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: io::Error,
    },
    /// The certificate or key could not be loaded.
    Tls {
        /// Certificate and key paths.
        cert: PathBuf,
        /// The key's path.
        key: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The HTTP server stopped with an error.
    Serve(io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PlainHttpNotLoopback(addr) => write!(
                f,
                "refusing to serve plain HTTP on {addr}: hosts would send users' codes across \
                 the network in the clear. Give --tls-cert and --tls-key (tls_cert and tls_key \
                 in the config), or listen on a loopback address (--listen 127.0.0.1:{}) behind \
                 a TLS proxy on this machine",
                addr.port()
            ),
            Self::StateDir { path, error } => write!(
                f,
                "cannot create the state dir {}: {error}; create it (mode 0700, owned by the \
                 server's user) or pick another with --state-dir",
                path.display()
            ),
            Self::Key(e) => e.fmt(f),
            Self::Push(e) => e.fmt(f),
            Self::Notifier(e) => write!(f, "cannot send notifications: {e}"),
            Self::Storage(e) => e.fmt(f),
            Self::Bind { addr, error } => write!(
                f,
                "cannot listen on {addr}: {error}; pick another address with --listen"
            ),
            Self::Tls { cert, key, error } => write!(
                f,
                "cannot use the TLS certificate {} and key {}: {error}; both must be PEM files \
                 (the key PKCS#8, PKCS#1 or SEC1)",
                cert.display(),
                key.display()
            ),
            Self::Serve(e) => write!(f, "the HTTP server failed: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Opens the state dir (made 0700 if missing), the record key (made on first start) and the
/// database (created and migrated): what every subcommand needs.
pub async fn open_app(settings: &Settings) -> Result<App, ServeError> {
    let dir = &settings.state_dir;
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|error| ServeError::StateDir {
                path: dir.clone(),
                error,
            })?;
    }
    let key = SealKey::load_or_create(&dir.join(KEY_FILE)).map_err(ServeError::Key)?;
    let store = Backend::open(&settings.database)
        .await
        .map_err(ServeError::Storage)?;
    let vapid = VapidKey::load_or_create(&dir.join(VAPID_KEY_FILE)).map_err(ServeError::Push)?;
    let notifier = Notifier::new(
        vapid,
        settings.push.subject.clone(),
        settings.push.send_timeout,
    )
    .map_err(ServeError::Notifier)?;
    let mut push = Push::new(settings.push.clone(), notifier);
    if let Some(url) = &settings.push.admin_webhook {
        let hook =
            admin_webhook(url, &dir.join(ADMIN_WEBHOOK_KEY_FILE)).map_err(ServeError::Notifier)?;
        push = push.with_admin_webhook(hook);
    }
    Ok(App {
        store,
        key,
        push,
        policy: settings.policy.clone(),
        rate_limit: settings.rate_limit.clone(),
        signature_skew: settings.signature_skew,
        join_token_ttl: settings.join_token_ttl,
        audit_retention: settings.audit_retention,
        metrics: Metrics::new(),
        offline_max_window: settings.offline_max_window,
        host_keys: crate::hosts::KeyCache::default(),
        verification_reads: crate::verify::ReadCache::default(),
    })
}

/// Serves until SIGTERM or SIGINT. Prints `listening on URL` once the socket is bound (tests
/// and scripts wait for that line; with port 0 it names the port chosen).
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    if settings.tls.is_none() && !settings.listen.ip().is_loopback() {
        return Err(ServeError::PlainHttpNotLoopback(settings.listen));
    }
    let app = Arc::new(open_app(&settings).await?);
    let tls = match &settings.tls {
        Some((cert, key)) => {
            install_crypto_provider();
            Some(
                RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(|error| ServeError::Tls {
                        cert: cert.clone(),
                        key: key.clone(),
                        error,
                    })?,
            )
        }
        None => None,
    };
    let listener = TcpListener::bind(settings.listen).map_err(|error| ServeError::Bind {
        addr: settings.listen,
        error,
    })?;
    let bind_error = |error| ServeError::Bind {
        addr: settings.listen,
        error,
    };
    listener.set_nonblocking(true).map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let router = api::router(Arc::clone(&app), settings.max_body_bytes);
    let handle = axum_server::Handle::new();
    tokio::spawn(stop_on_signal(handle.clone()));
    tokio::spawn(prune_nonces(Arc::clone(&app)));
    if let Retention::For(span) = app.audit_retention {
        tokio::spawn(prune_audit(Arc::clone(&app), span));
    }
    tokio::spawn(approval::listen_to_replicas(Arc::clone(&app)));
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%bound, scheme, "listening");
    println!("listening on {scheme}://{bound}");
    let _ = io::stdout().flush();
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let result = match tls {
        Some(config) => {
            axum_server::from_tcp_rustls(listener, config)
                .handle(handle)
                .serve(service)
                .await
        }
        None => {
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(service)
                .await
        }
    };
    result.map_err(ServeError::Serve)
}

/// Forgets, once a minute, the nonces of requests that would be refused as stale anyway, and
/// the failure counts of sources that no longer matter.
async fn prune_nonces(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let skew = i64::try_from(app.signature_skew.as_secs()).unwrap_or(i64::MAX);
        let before = unix(UnixTime::now()).saturating_sub(skew.saturating_add(1));
        if let Err(e) = app.store.prune_nonces(before).await {
            metrics::database_error();
            tracing::warn!(error = %e, "pruning nonces");
        }
        if let Err(e) = sources::prune(&app, UnixTime::now().0).await {
            metrics::database_error();
            tracing::warn!(error = %e, "pruning source failures");
        }
    }
}

/// Deletes audit entries older than `span`: at start, then every tenth of `span` (at least
/// every second, at most every hour), so none outlives it by more than a tenth.
async fn prune_audit(app: Arc<App>, span: Duration) {
    let every = (span / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let mut tick = tokio::time::interval(every);
    let span = i64::try_from(span.as_secs()).unwrap_or(i64::MAX);
    loop {
        tick.tick().await;
        let before = unix(UnixTime::now()).saturating_sub(span);
        match app.store.prune_audit(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "audit entries past audit_retention"),
            Err(e) => {
                metrics::database_error();
                tracing::warn!(error = %e, "pruning the audit log");
            }
        }
        // A host's reports are kept as long as its audit entries: a resend after that would
        // be counted again, but a host resends within minutes of the server's return.
        if let Err(e) = app.store.prune_reports(before).await {
            metrics::database_error();
            tracing::warn!(error = %e, "pruning offline reports");
        }
    }
}

/// One crypto provider for the process: ring (no OpenSSL).
#[expect(
    deprecated,
    reason = "rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange; \
              aws-lc-rs is a much larger C build. Classical TLS 1.2/1.3 stays sound"
)]
pub(crate) fn install_crypto_provider() {
    // Err only if a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn stop_on_signal(handle: axum_server::Handle) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping");
    // Requests in flight get a few seconds to finish and write their audit entries.
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
}

/// The file the admins' webhook key is kept in, in the state dir.
pub const ADMIN_WEBHOOK_KEY_FILE: &str = "admin-webhook.key";

/// The admins' webhook to `url`, signed with the key in `path`: made on first start (0600,
/// exclusively, as the VAPID key), the text the receiver is given (`cat` the file).
fn admin_webhook(url: &str, path: &std::path::Path) -> Result<Webhook, String> {
    let fail = |e: &dyn fmt::Display| format!("push.admin_webhook's key {}: {e}", path.display());
    let bad_url = |e: WebPushError| format!("push.admin_webhook {url:?}: {e}");
    // The URL first: a server refused for its config makes no key file.
    Webhook::new(url, Vec::new()).map_err(bad_url)?;
    let secret = Webhook::new_secret().map_err(|e| fail(&e))?;
    crate::keyfile::create(path, secret.as_bytes()).map_err(|e| fail(&e))?;
    let key = crate::keyfile::read_private(path, 64).map_err(|e| match e {
        crate::keyfile::KeyFileError::Io(e) => fail(&e),
        crate::keyfile::KeyFileError::Mode(mode) => fail(&format!(
            "group or others may read it (mode {mode:o}); chmod 600 it"
        )),
    })?;
    Webhook::new(url, key.to_vec()).map_err(bad_url)
}
