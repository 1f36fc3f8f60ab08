//! Hosts: `host add` makes a one-time join token, `POST /v1/join` spends it to register the
//! host's public key, and [`authenticate`] checks every other host request's signature.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use axum::http::{HeaderMap, StatusCode};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use sshield_core::UnixTime;
use sshield_wire::signed::Refused;

use crate::api::{ApiError, App};
use crate::records::unix;
use crate::storage::{HostRow, NonceRow, Storage, StorageError};

/// A join token starts with this, so one pasted in the wrong place is recognisable.
const TOKEN_PREFIX: &str = "sshj_";

/// Why a host command failed.
#[derive(Debug)]
pub enum HostError {
    /// The database.
    Storage(StorageError),
    /// `host add` for a name that is taken.
    Exists(String),
    /// `host revoke` for an unknown host.
    Unknown(String),
    /// A host name that is not a DNS-like label.
    BadName(String),
    /// The random number generator failed.
    Random(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Storage(e) => e.fmt(f),
            Self::Exists(h) => write!(
                f,
                "host {h:?} exists already; pick another name (a revoked host keeps its name)"
            ),
            Self::Unknown(h) => write!(f, "no host named {h:?} (sshield-server host list)"),
            Self::BadName(h) => write!(
                f,
                "host name {h:?}: use 1 to 253 letters, digits, '.', '-' or '_' (e.g. web1.example.org)"
            ),
            Self::Random(e) => write!(f, "the system's random number generator failed: {e}"),
        }
    }
}

impl std::error::Error for HostError {}

impl From<StorageError> for HostError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

pub use sshield_core::fleet::valid_host_name;

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Makes a join token for `name`, valid for the configured time; only its hash is stored.
pub async fn add(app: &App, name: &str, now: UnixTime) -> Result<String, HostError> {
    if !valid_host_name(name) {
        return Err(HostError::BadName(name.to_owned()));
    }
    if app.store.load_host(name).await?.is_some() {
        return Err(HostError::Exists(name.to_owned()));
    }
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| HostError::Random(e.to_string()))?;
    let token = format!(
        "{TOKEN_PREFIX}{}",
        data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase()
    );
    let ttl = i64::try_from(app.join_token_ttl.as_secs()).unwrap_or(i64::MAX);
    app.store
        .add_join_token(
            &token_hash(&token),
            name,
            unix(now),
            unix(now).saturating_add(ttl),
        )
        .await?;
    Ok(token)
}

/// Revokes `name`: its requests are refused from now on.
pub async fn revoke(app: &App, name: &str, now: UnixTime) -> Result<(), HostError> {
    if app.store.revoke_host(name, unix(now)).await? {
        Ok(())
    } else {
        Err(HostError::Unknown(name.to_owned()))
    }
}

/// Every host.
pub async fn list(app: &App) -> Result<Vec<HostRow>, HostError> {
    Ok(app.store.list_hosts().await?)
}

fn refused(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

/// Registers a host with a join token: the host's name, or why not.
pub async fn join(
    app: &App,
    token: &str,
    name: &str,
    public_key: &str,
    now: UnixTime,
) -> Result<String, ApiError> {
    let key = data_encoding::BASE64
        .decode(public_key.as_bytes())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .filter(|b| VerifyingKey::from_bytes(b).is_ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "field `public_key`: not an ed25519 public key (32 bytes, base64)".to_owned(),
            )
        })?;
    if !valid_host_name(name) {
        return Err(ApiError::invalid(format!(
            "field `name`: {}",
            HostError::BadName(name.to_owned())
        )));
    }
    let Some(host) = app
        .store
        .use_join_token(&token_hash(token), unix(now))
        .await?
    else {
        return Err(refused(
            StatusCode::UNAUTHORIZED,
            "the join token is unknown, used or expired; make a new one with \
             `sshield-server host add NAME`",
        ));
    };
    if host != name {
        // The token is spent all the same: it was shown to someone who misused it.
        return Err(refused(
            StatusCode::FORBIDDEN,
            format!("this join token was made for host {host:?}, not {name:?}; it is now spent"),
        ));
    }
    let row = HostRow {
        name: name.to_owned(),
        public_key: key.to_vec(),
        created_at: unix(now),
        revoked_at: None,
    };
    match app.store.add_host(&row).await {
        Ok(()) => Ok(host),
        Err(StorageError::Exists { .. }) => Err(refused(
            StatusCode::CONFLICT,
            format!("host {name:?} has joined already"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A host request whose signature is good, its nonce not yet remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The host that signed it, its nonce and time: remembered with what the request stores.
    pub nonce: NonceRow,
    /// The key the signature was checked with.
    pub key: Vec<u8>,
    /// Whether `key` came from [`KeyCache`] rather than from the host's row read for this
    /// request: then the row is still to be confirmed, with the request's other reads
    /// ([`confirm_row`], [`confirm`]) or by the verification's writes
    /// ([`crate::storage::Basis`]).
    pub cached_key: bool,
}

/// The public keys of hosts whose requests were good, by name: a verification checks its
/// signature with the key it had, and the database stores the verification only if the
/// host's row still holds that key and is unrevoked ([`crate::storage::Basis`]; when the
/// verification reads its rows, [`confirm_row`] refuses it first). No request is decided on
/// a key the database no longer holds: another replica may have revoked the host or seen it
/// join again. Filled only from rows (at most one entry per joined host).
#[derive(Debug, Default)]
pub struct KeyCache(Mutex<HashMap<String, Vec<u8>>>);

impl KeyCache {
    fn get(&self, host: &str) -> Option<Vec<u8>> {
        self.0.lock().ok()?.get(host).cloned()
    }

    fn put(&self, host: &str, key: &[u8]) {
        if let Ok(mut keys) = self.0.lock() {
            if keys.get(host).is_none_or(|k| k != key) {
                keys.insert(host.to_owned(), key.to_vec());
            }
        }
    }

    fn forget(&self, host: &str) {
        if let Ok(mut keys) = self.0.lock() {
            keys.remove(host);
        }
    }
}

impl Signed {
    /// The host that signed the request.
    pub fn host(&self) -> &str {
        &self.nonce.host
    }
}

/// Checks a signed request and remembers its nonce: the host it comes from, or the 4xx that
/// refuses it.
pub async fn authenticate(
    app: &App,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: UnixTime,
) -> Result<String, ApiError> {
    let signed = check_signature(app, method, path, headers, body, now).await?;
    remember(app, &signed).await?;
    Ok(signed.nonce.host)
}

/// Checks a signed request's signature, time and host, but does not remember its nonce: the
/// caller stores it with what the request does (a verification, in one transaction) or
/// calls [`remember`].
pub async fn check_signature(
    app: &App,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: UnixTime,
) -> Result<Signed, ApiError> {
    let signed = parse_signed(app, headers, now)?;
    verified_by_row(app, &signed, method, path, body).await
}

/// As [`check_signature`], with the host's key from [`KeyCache`] when it has one (then the
/// caller confirms the host's row, read with its other reads: [`confirm_row`]).
pub async fn check_signature_cached(
    app: &App,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: UnixTime,
) -> Result<Signed, ApiError> {
    let signed = parse_signed(app, headers, now)?;
    if let Some(key) = app.host_keys.get(signed.host) {
        if let Ok(mut good) = verified(app, &signed, &key, method, path, body) {
            good.cached_key = true;
            return Ok(good);
        }
        // Not with that key: the row says which.
        app.host_keys.forget(signed.host);
    }
    verified_by_row(app, &signed, method, path, body).await
}

/// `signed` checked with the key in its host's row, as read now.
async fn verified_by_row(
    app: &App,
    signed: &sshield_wire::signed::Signed<'_>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Signed, ApiError> {
    let row = app.store.load_host(signed.host).await?;
    let key = confirm_row(app, signed.host, row.as_ref(), None)?;
    verified(app, signed, key, method, path, body)
}

/// Checks the host's `row` as read now: it exists, is not revoked, and (when `key` is given,
/// the key a signature was checked with) still holds that key. Its key, or the 401/403.
pub fn confirm_row<'r>(
    app: &App,
    host: &str,
    row: Option<&'r HostRow>,
    key: Option<&[u8]>,
) -> Result<&'r [u8], ApiError> {
    let refuse = |status, message: String| {
        app.host_keys.forget(host);
        Err(refused(status, message))
    };
    let Some(row) = row else {
        return refuse(StatusCode::UNAUTHORIZED, format!("unknown host {host:?}"));
    };
    if row.revoked_at.is_some() {
        return refuse(StatusCode::FORBIDDEN, format!("host {host:?} is revoked"));
    }
    if key.is_some_and(|k| k != row.public_key) {
        // Signed with a key the host's row no longer holds (it joined again).
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!("bad signature: not host {host:?}'s key"),
        );
    }
    Ok(&row.public_key)
}

/// Confirms the host of a request checked with a cached key, reading its row (for requests
/// refused before their reads).
pub async fn confirm(app: &App, signed: &Signed) -> Result<(), ApiError> {
    if !signed.cached_key {
        return Ok(());
    }
    let row = app.store.load_host(signed.host()).await?;
    confirm_row(app, signed.host(), row.as_ref(), Some(&signed.key)).map(|_| ())
}

/// The signature headers of a request, its time checked.
fn parse_signed<'h>(
    app: &App,
    headers: &'h HeaderMap,
    now: UnixTime,
) -> Result<sshield_wire::signed::Signed<'h>, ApiError> {
    let unauthorized = |e: Refused| refused(StatusCode::UNAUTHORIZED, e.to_string());
    let signed =
        sshield_wire::signed::Signed::parse(|name| headers.get(name).and_then(|v| v.to_str().ok()))
            .map_err(unauthorized)?;
    signed
        .check_time(unix(now), app.signature_skew.as_secs())
        .map_err(unauthorized)?;
    Ok(signed)
}

/// `signed` checked with `key`; a good one's key is remembered for the host's next request.
fn verified(
    app: &App,
    signed: &sshield_wire::signed::Signed<'_>,
    key: &[u8],
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Signed, ApiError> {
    signed
        .verify(key, method, path, body)
        .map_err(|e| refused(StatusCode::UNAUTHORIZED, e.to_string()))?;
    app.host_keys.put(signed.host, key);
    Ok(Signed {
        nonce: NonceRow {
            host: signed.host.to_owned(),
            nonce: signed.nonce.to_owned(),
            ts: signed.timestamp,
        },
        key: key.to_vec(),
        cached_key: false,
    })
}

/// Remembers a checked request's nonce on its own; the 401 for one used before.
pub async fn remember(app: &App, signed: &Signed) -> Result<(), ApiError> {
    // Remembered only once the signature is good, so nobody else can fill a host's nonces.
    let nonce = &signed.nonce;
    if app
        .store
        .remember_nonce(&nonce.host, &nonce.nonce, nonce.ts)
        .await?
    {
        Ok(())
    } else {
        Err(replayed(signed.host()))
    }
}

/// The answer to a request whose nonce its host used before.
pub fn replayed(host: &str) -> ApiError {
    refused(
        StatusCode::UNAUTHORIZED,
        format!("replayed request: host {host:?} used this nonce before"),
    )
}
