//! Hosts: `host add` makes a one-time join token, `POST /v1/join` spends it to register the
//! host's public key, and [`authenticate`] checks every other host request's signature.

use std::fmt;

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
    let unauthorized = |e: Refused| refused(StatusCode::UNAUTHORIZED, e.to_string());
    let signed =
        sshield_wire::signed::Signed::parse(|name| headers.get(name).and_then(|v| v.to_str().ok()))
            .map_err(unauthorized)?;
    let now = unix(now);
    signed
        .check_time(now, app.signature_skew.as_secs())
        .map_err(unauthorized)?;
    let host = signed.host;
    let unknown = || refused(StatusCode::UNAUTHORIZED, format!("unknown host {host:?}"));
    let row = app.store.load_host(host).await?.ok_or_else(unknown)?;
    if row.revoked_at.is_some() {
        return Err(refused(
            StatusCode::FORBIDDEN,
            format!("host {host:?} is revoked"),
        ));
    }
    signed
        .verify(&row.public_key, method, path, body)
        .map_err(unauthorized)?;
    Ok(Signed {
        nonce: NonceRow {
            host: host.to_owned(),
            nonce: signed.nonce.to_owned(),
            ts: signed.timestamp,
        },
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
