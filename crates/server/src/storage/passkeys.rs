//! What passkeys for push approval keep (issue 12): each device's WebAuthn credential and the
//! server's half of a ceremony between its two requests. Written once for both backends;
//! checked by the conformance suite (tests/storage.rs).
//!
//! The rules that must hold under a race are the database's: a credential id is a primary
//! key (one authenticator's credential never answers for two accounts), a device and its
//! passkey are stored in one transaction, and a ceremony is taken by the one `DELETE` that
//! finds it unexpired, so a challenge answers once, on any replica.

use std::future::Future;

use sqlx::Row;

use super::push::{DeviceRow, ADD_DEVICE};
use super::sql::db;
use super::{PostgresStorage, SqliteStorage, StorageError};

/// One device's passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRow {
    /// The credential's id, base64url; unique across users.
    pub credential_id: String,
    /// The device it belongs to.
    pub device: String,
    /// Whose.
    pub user: String,
    /// The credential (public key, counter) as webauthn-rs's `Passkey` JSON.
    pub passkey: String,
    /// When it was registered.
    pub created_at: i64,
    /// When it last approved.
    pub used_at: Option<i64>,
}

/// What became of storing a device with its passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyAdded {
    /// Both stored.
    Stored,
    /// That credential is registered already (to this or another user): nothing stored.
    CredentialTaken,
}

/// Passkeys' part of the storage. Implemented by both backends and by
/// [`Backend`](super::Backend).
pub trait PasskeyStorage: Send + Sync {
    /// Stores `device` and its passkey together, or neither.
    fn add_device_with_passkey(
        &self,
        device: &DeviceRow,
        passkey: &PasskeyRow,
    ) -> impl Future<Output = Result<PasskeyAdded, StorageError>> + Send;
    /// The passkey of `device`, if it has one.
    fn load_passkey(
        &self,
        device: &str,
    ) -> impl Future<Output = Result<Option<PasskeyRow>, StorageError>> + Send;
    /// A user's passkeys, revoked devices' too (a new registration excludes them all).
    fn passkeys_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<PasskeyRow>, StorageError>> + Send;
    /// Stores the passkey's new state (its counter) after an approval at `now`.
    fn update_passkey(
        &self,
        device: &str,
        passkey: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// The user an enrollment link with this hash was made for, and when it expires, if it
    /// is unused and unexpired at `now`; the link is not spent.
    fn peek_enroll_link(
        &self,
        hash: &[u8],
        now: i64,
    ) -> impl Future<Output = Result<Option<(String, i64)>, StorageError>> + Send;
    /// Stores a ceremony's state under `key` until `expires_at`, replacing an earlier one
    /// under that key (a new challenge voids the last), and drops ceremonies expired at `now`.
    fn put_ceremony(
        &self,
        key: &str,
        user: &str,
        state: &str,
        expires_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Takes the ceremony under `key` if it is unexpired at `now`: its user and state, once.
    fn take_ceremony(
        &self,
        key: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<(String, String)>, StorageError>> + Send;
    /// The user and expiry of the ceremony under `key` if it is unexpired at `now`, leaving
    /// it in place (a grant that lasts until it is taken or expires).
    fn peek_ceremony(
        &self,
        key: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<(String, i64)>, StorageError>> + Send;
}

const ADD_PASSKEY: &str = "INSERT INTO passkeys \
     (credential_id, device, \"user\", passkey, created_at, used_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (credential_id) DO NOTHING";
const PASSKEY_COLUMNS: &str =
    "SELECT credential_id, device, \"user\", passkey, created_at, used_at FROM passkeys";
const UPDATE_PASSKEY: &str = "UPDATE passkeys SET passkey = $2, used_at = $3 WHERE device = $1";
const PEEK_ENROLL_LINK: &str = "SELECT \"user\", expires_at FROM enroll_links \
     WHERE hash = $1 AND used_at IS NULL AND expires_at > $2";
const PRUNE_CEREMONIES: &str = "DELETE FROM webauthn_ceremonies WHERE expires_at <= $1";
const PUT_CEREMONY: &str =
    "INSERT INTO webauthn_ceremonies (ceremony, \"user\", state, expires_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (ceremony) DO UPDATE SET \"user\" = excluded.\"user\", \
     state = excluded.state, expires_at = excluded.expires_at";
const PEEK_CEREMONY: &str = "SELECT \"user\", expires_at FROM webauthn_ceremonies \
     WHERE ceremony = $1 AND expires_at > $2";
const TAKE_CEREMONY: &str = "DELETE FROM webauthn_ceremonies \
     WHERE ceremony = $1 AND expires_at > $2 RETURNING \"user\", state";

/// A [`PasskeyRow`] from a result row of either backend.
macro_rules! passkey_row {
    ($r:expr) => {
        Ok::<_, sqlx::Error>(PasskeyRow {
            credential_id: $r.try_get("credential_id")?,
            device: $r.try_get("device")?,
            user: $r.try_get("user")?,
            passkey: $r.try_get("passkey")?,
            created_at: $r.try_get("created_at")?,
            used_at: $r.try_get("used_at")?,
        })
    };
}

/// Implements [`PasskeyStorage`] for a backend whose `pool` field is a `sqlx::Pool`.
macro_rules! passkey_storage_impl {
    ($storage:ty) => {
        impl PasskeyStorage for $storage {
            async fn add_device_with_passkey(
                &self,
                device: &DeviceRow,
                passkey: &PasskeyRow,
            ) -> Result<PasskeyAdded, StorageError> {
                const DOING: &str = "adding a device with its passkey";
                let mut tx = self.pool.begin().await.map_err(db(DOING))?;
                sqlx::query(ADD_DEVICE)
                    .bind(&device.id)
                    .bind(&device.user)
                    .bind(&device.kind)
                    .bind(&device.name)
                    .bind(&device.data)
                    .bind(&device.token_hash)
                    .bind(device.created_at)
                    .bind(device.revoked_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
                let added = sqlx::query(ADD_PASSKEY)
                    .bind(&passkey.credential_id)
                    .bind(&passkey.device)
                    .bind(&passkey.user)
                    .bind(&passkey.passkey)
                    .bind(passkey.created_at)
                    .bind(passkey.used_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(DOING))?;
                if added.rows_affected() == 0 {
                    tx.rollback().await.map_err(db(DOING))?;
                    return Ok(PasskeyAdded::CredentialTaken);
                }
                tx.commit().await.map_err(db(DOING))?;
                Ok(PasskeyAdded::Stored)
            }

            async fn load_passkey(&self, device: &str) -> Result<Option<PasskeyRow>, StorageError> {
                let sql = format!("{PASSKEY_COLUMNS} WHERE device = $1");
                let row = sqlx::query(&sql)
                    .bind(device)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("reading a passkey"))?;
                row.map(|r| passkey_row!(r))
                    .transpose()
                    .map_err(db("reading a passkey"))
            }

            async fn passkeys_of(&self, user: &str) -> Result<Vec<PasskeyRow>, StorageError> {
                let sql = format!("{PASSKEY_COLUMNS} WHERE \"user\" = $1 ORDER BY created_at");
                let rows = sqlx::query(&sql)
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("listing passkeys"))?;
                rows.iter()
                    .map(|r| passkey_row!(r))
                    .collect::<Result<_, _>>()
                    .map_err(db("listing passkeys"))
            }

            async fn update_passkey(
                &self,
                device: &str,
                passkey: &str,
                now: i64,
            ) -> Result<bool, StorageError> {
                let done = sqlx::query(UPDATE_PASSKEY)
                    .bind(device)
                    .bind(passkey)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(db("updating a passkey"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn peek_enroll_link(
                &self,
                hash: &[u8],
                now: i64,
            ) -> Result<Option<(String, i64)>, StorageError> {
                const DOING: &str = "reading an enrollment link";
                let row = sqlx::query(PEEK_ENROLL_LINK)
                    .bind(hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db(DOING))?;
                row.map(|r| Ok::<_, sqlx::Error>((r.try_get("user")?, r.try_get("expires_at")?)))
                    .transpose()
                    .map_err(db(DOING))
            }

            async fn put_ceremony(
                &self,
                key: &str,
                user: &str,
                state: &str,
                expires_at: i64,
                now: i64,
            ) -> Result<(), StorageError> {
                const DOING: &str = "storing a passkey challenge";
                sqlx::query(PRUNE_CEREMONIES)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(db(DOING))?;
                sqlx::query(PUT_CEREMONY)
                    .bind(key)
                    .bind(user)
                    .bind(state)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await
                    .map_err(db(DOING))?;
                Ok(())
            }

            async fn take_ceremony(
                &self,
                key: &str,
                now: i64,
            ) -> Result<Option<(String, String)>, StorageError> {
                const DOING: &str = "taking a passkey challenge";
                let row = sqlx::query(TAKE_CEREMONY)
                    .bind(key)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db(DOING))?;
                row.map(|r| Ok::<_, sqlx::Error>((r.try_get("user")?, r.try_get("state")?)))
                    .transpose()
                    .map_err(db(DOING))
            }

            async fn peek_ceremony(
                &self,
                key: &str,
                now: i64,
            ) -> Result<Option<(String, i64)>, StorageError> {
                const DOING: &str = "reading a ceremony";
                let row = sqlx::query(PEEK_CEREMONY)
                    .bind(key)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db(DOING))?;
                row.map(|r| Ok::<_, sqlx::Error>((r.try_get("user")?, r.try_get("expires_at")?)))
                    .transpose()
                    .map_err(db(DOING))
            }
        }
    };
}

passkey_storage_impl!(SqliteStorage);
passkey_storage_impl!(PostgresStorage);
