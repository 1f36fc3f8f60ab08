//! What push approval keeps (issue 12): devices, pending approvals with their number, the
//! per-user limits and the "This wasn't me" block, and webhooks. Written once for both
//! backends, like `sql.rs`; checked by the same conformance suite (tests/storage.rs).
//!
//! The rules that must hold under a race are the database's: one pending approval per user is
//! a partial unique index, and a decision is the one `UPDATE` that finds the request still
//! pending and unexpired, so of an approval and a denial racing on two replicas exactly one is
//! stored, and a wrong number is stored as a denial by that same statement.

use std::future::Future;

use sqlx::Row;

use super::sql::db;
use super::{PostgresStorage, SqliteStorage, StorageError};

/// One device of a user: a browser subscribed to Web Push (later, a passkey).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// Random id, shown in `device list`.
    pub id: String,
    /// Whose.
    pub user: String,
    /// `webpush` (or `passkey`).
    pub kind: String,
    /// A name the user or admin gave it (`alice's phone`).
    pub name: String,
    /// What the kind needs, as JSON: a subscription's `endpoint`, `p256dh` and `auth`.
    pub data: String,
    /// SHA-256 of the bearer token the device's web app signs in with.
    pub token_hash: Option<Vec<u8>>,
    /// When it was added.
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// One login waiting for (or decided by) the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRow {
    /// Random, unguessable id.
    pub id: String,
    /// The user asked.
    pub user: String,
    /// The host that asked.
    pub host: String,
    /// The client's address, if the host knew it.
    pub source: Option<String>,
    /// The PAM service or front end.
    pub service: String,
    /// The command of a ForceCommand or non-interactive login.
    pub command: Option<String>,
    /// The number the SSH prompt shows, which the user must pick.
    pub number: i64,
    /// The three numbers offered, comma-separated, the right one among them.
    pub choices: String,
    /// When it was asked.
    pub created_at: i64,
    /// When it stops being approvable.
    pub expires_at: i64,
    /// `pending`, `approved`, `denied`, `reported` or `expired`.
    pub state: String,
    /// When it was decided.
    pub decided_at: Option<i64>,
    /// The device that decided it.
    pub device: Option<String>,
}

impl ApprovalRow {
    /// Waiting for the user.
    pub const PENDING: &'static str = "pending";
    /// Approved with the right number.
    pub const APPROVED: &'static str = "approved";
    /// Denied, or the wrong number picked.
    pub const DENIED: &'static str = "denied";
    /// "This wasn't me": denied, and the user's pushes blocked.
    pub const REPORTED: &'static str = "reported";
    /// Nobody decided in time.
    pub const EXPIRED: &'static str = "expired";
}

/// What became of a request for a new approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Stored, pending.
    Stored,
    /// The user has a pending request already (one at a time): its id.
    AlreadyPending {
        /// The pending request.
        id: String,
    },
    /// The user had `count` requests in the last hour, the most allowed.
    TooMany {
        /// Requests in the last hour.
        count: i64,
    },
    /// The user said "This wasn't me" and no admin has cleared it yet.
    Blocked {
        /// Since when.
        since: i64,
    },
}

/// What the user chose on the approval page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Approve, having picked `number`: stored as a denial unless it is the request's.
    Approve {
        /// The number picked.
        number: i64,
    },
    /// Deny.
    Deny,
    /// "This wasn't me": deny and block the user's pushes.
    Report,
}

/// A user's webhook as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    /// Where to POST.
    pub url: String,
    /// The HMAC key.
    pub secret: Vec<u8>,
}

/// One hour: the span of the per-user push limit.
const HOUR: i64 = 3600;

/// Push approval's part of the storage. Implemented by both backends and by
/// [`Backend`](super::Backend).
pub trait PushStorage: Send + Sync {
    /// Stores a device.
    fn add_device(&self, row: &DeviceRow) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// A user's devices, revoked ones too, oldest first.
    fn list_devices(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<DeviceRow>, StorageError>> + Send;
    /// The unrevoked device whose token has this hash.
    fn device_by_token(
        &self,
        hash: &[u8],
    ) -> impl Future<Output = Result<Option<DeviceRow>, StorageError>> + Send;
    /// Revokes one of `user`'s devices at `now`; false if they have none of that id.
    fn revoke_device(
        &self,
        user: &str,
        id: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Replaces what an unrevoked device of `user` holds (a browser's new subscription, or
    /// `{}` when the push service says it is gone); false if they have no such device.
    fn set_device_data(
        &self,
        user: &str,
        id: &str,
        data: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Stores an enrollment link's token hash for `user`, valid until `expires_at`.
    fn add_enroll_link(
        &self,
        hash: &[u8],
        user: &str,
        now: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Spends the link with this hash if it is unused and unexpired at `now`: the user it was
    /// made for, or `None`. Of two racing calls, one gets the user.
    fn use_enroll_link(
        &self,
        hash: &[u8],
        now: i64,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;

    /// Sets (or replaces) a user's webhook.
    fn set_webhook(
        &self,
        user: &str,
        hook: &WebhookRow,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// A user's webhook, if any.
    fn load_webhook(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Option<WebhookRow>, StorageError>> + Send;
    /// Removes a user's webhook; false if there was none.
    fn delete_webhook(&self, user: &str)
        -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Stores `row` as pending unless the user is blocked, has a pending request (call
    /// [`expire_approvals`](Self::expire_approvals) first, so an expired one is not counted
    /// as pending), or had `per_hour` requests in the hour before `now`.
    fn admit_approval(
        &self,
        row: &ApprovalRow,
        per_hour: i64,
        now: i64,
    ) -> impl Future<Output = Result<Admission, StorageError>> + Send;
    /// One request, in whatever state.
    fn load_approval(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ApprovalRow>, StorageError>> + Send;
    /// A user's requests still pending at `now`, newest first.
    fn pending_approvals(
        &self,
        user: &str,
        now: i64,
    ) -> impl Future<Output = Result<Vec<ApprovalRow>, StorageError>> + Send;
    /// Decides `user`'s pending, unexpired request `id` from `device`: the row as decided, or
    /// `None` if there is no such request of that user still pending at `now`.
    fn decide_approval(
        &self,
        id: &str,
        user: &str,
        verdict: Verdict,
        device: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<ApprovalRow>, StorageError>> + Send;
    /// Marks requests pending past their expiry as expired, and returns them: each is
    /// returned once, to one caller, which audits it.
    fn expire_approvals(
        &self,
        now: i64,
    ) -> impl Future<Output = Result<Vec<ApprovalRow>, StorageError>> + Send;
    /// Since when `user`'s pushes are blocked, if they are.
    fn push_block(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Option<i64>, StorageError>> + Send;
    /// Lifts `user`'s block; false if there was none.
    fn clear_push_block(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Tells every replica that request `id` changed (PostgreSQL `NOTIFY`; nothing on
    /// SQLite, whose one server wakes its own waiters).
    fn announce_approval(&self, id: &str) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// The channel replicas hear about decisions on (`LISTEN sshield_approval`).
pub const APPROVAL_CHANNEL: &str = "sshield_approval";

pub(super) const ADD_DEVICE: &str = "INSERT INTO devices \
     (id, \"user\", kind, name, data, token_hash, created_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const DEVICE_COLUMNS: &str =
    "id, \"user\", kind, name, data, token_hash, created_at, revoked_at FROM devices";
const REVOKE_DEVICE: &str = "UPDATE devices SET revoked_at = COALESCE(revoked_at, $3) \
     WHERE \"user\" = $1 AND id = $2";
const SET_DEVICE_DATA: &str = "UPDATE devices SET data = $3 \
     WHERE \"user\" = $1 AND id = $2 AND revoked_at IS NULL";
const ADD_ENROLL_LINK: &str = "INSERT INTO enroll_links (hash, \"user\", created_at, expires_at) \
     VALUES ($1, $2, $3, $4)";
const USE_ENROLL_LINK: &str = "UPDATE enroll_links SET used_at = $2 \
     WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING \"user\"";
const SET_WEBHOOK: &str = "INSERT INTO webhooks (\"user\", url, secret) VALUES ($1, $2, $3) \
     ON CONFLICT (\"user\") DO UPDATE SET url = excluded.url, secret = excluded.secret";
const LOAD_WEBHOOK: &str = "SELECT url, secret FROM webhooks WHERE \"user\" = $1";
const DELETE_WEBHOOK: &str = "DELETE FROM webhooks WHERE \"user\" = $1";
const APPROVAL_COLUMNS: &str = "id, \"user\", host, source, service, command, number, choices, \
     created_at, expires_at, state, decided_at, device";
// Of two replicas sweeping at once, each row is returned by one: the UPDATE that changes it.
const EXPIRE: &str = "UPDATE approvals SET state = 'expired' \
     WHERE state = 'pending' AND expires_at <= $1 RETURNING ";
const PUSH_BLOCK: &str = "SELECT blocked_at FROM push_blocks WHERE \"user\" = $1";
const COUNT_RECENT: &str =
    "SELECT COUNT(*) AS n FROM approvals WHERE \"user\" = $1 AND created_at > $2";
const INSERT_APPROVAL: &str = "INSERT INTO approvals (id, \"user\", host, source, service, \
     command, number, choices, created_at, expires_at, state) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending')";
const PENDING_OF_USER: &str = "SELECT id FROM approvals WHERE \"user\" = $1 AND state = 'pending'";
// One statement decides: a wrong number is stored as a denial, and only a request still
// pending and unexpired changes (of two racing decisions one finds it so).
const DECIDE: &str = "UPDATE approvals SET \
     state = CASE WHEN CAST($5 AS BIGINT) IS NULL OR number = $5 THEN $3 ELSE 'denied' END, \
     decided_at = $4, device = $6 \
     WHERE id = $1 AND \"user\" = $2 AND state = 'pending' AND expires_at > $4 RETURNING ";
const BLOCK: &str = "INSERT INTO push_blocks (\"user\", blocked_at, approval) VALUES ($1, $2, $3) \
     ON CONFLICT (\"user\") DO NOTHING";
const CLEAR_BLOCK: &str = "DELETE FROM push_blocks WHERE \"user\" = $1";

/// An [`ApprovalRow`] from a result row of either backend.
macro_rules! approval_row {
    ($r:expr) => {
        Ok::<_, sqlx::Error>(ApprovalRow {
            id: $r.try_get("id")?,
            user: $r.try_get("user")?,
            host: $r.try_get("host")?,
            source: $r.try_get("source")?,
            service: $r.try_get("service")?,
            command: $r.try_get("command")?,
            number: $r.try_get("number")?,
            choices: $r.try_get("choices")?,
            created_at: $r.try_get("created_at")?,
            expires_at: $r.try_get("expires_at")?,
            state: $r.try_get("state")?,
            decided_at: $r.try_get("decided_at")?,
            device: $r.try_get("device")?,
        })
    };
}

/// A [`DeviceRow`] from a result row of either backend.
macro_rules! device_row {
    ($r:expr) => {
        Ok::<_, sqlx::Error>(DeviceRow {
            id: $r.try_get("id")?,
            user: $r.try_get("user")?,
            kind: $r.try_get("kind")?,
            name: $r.try_get("name")?,
            data: $r.try_get("data")?,
            token_hash: $r.try_get("token_hash")?,
            created_at: $r.try_get("created_at")?,
            revoked_at: $r.try_get("revoked_at")?,
        })
    };
}

/// Implements [`PushStorage`] for a backend whose `pool` field is a `sqlx::Pool`; `$announce`
/// is the statement that tells other replicas of a change, if the backend has one.
macro_rules! push_storage_impl {
    ($storage:ty, $announce:expr) => {
        impl PushStorage for $storage {
            async fn add_device(&self, row: &DeviceRow) -> Result<(), StorageError> {
                sqlx::query(ADD_DEVICE)
                    .bind(&row.id)
                    .bind(&row.user)
                    .bind(&row.kind)
                    .bind(&row.name)
                    .bind(&row.data)
                    .bind(&row.token_hash)
                    .bind(row.created_at)
                    .bind(row.revoked_at)
                    .execute(&self.pool)
                    .await
                    .map_err(db("adding a device"))?;
                Ok(())
            }

            async fn list_devices(&self, user: &str) -> Result<Vec<DeviceRow>, StorageError> {
                let sql =
                    format!("SELECT {DEVICE_COLUMNS} WHERE \"user\" = $1 ORDER BY created_at, id");
                let rows = sqlx::query(&sql)
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("listing devices"))?;
                rows.iter()
                    .map(|r| device_row!(r))
                    .collect::<Result<_, _>>()
                    .map_err(db("listing devices"))
            }

            async fn device_by_token(
                &self,
                hash: &[u8],
            ) -> Result<Option<DeviceRow>, StorageError> {
                let sql =
                    format!("SELECT {DEVICE_COLUMNS} WHERE token_hash = $1 AND revoked_at IS NULL");
                let row = sqlx::query(&sql)
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("finding a device"))?;
                row.map(|r| device_row!(r))
                    .transpose()
                    .map_err(db("finding a device"))
            }

            async fn revoke_device(
                &self,
                user: &str,
                id: &str,
                now: i64,
            ) -> Result<bool, StorageError> {
                let done = sqlx::query(REVOKE_DEVICE)
                    .bind(user)
                    .bind(id)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(db("revoking a device"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_device_data(
                &self,
                user: &str,
                id: &str,
                data: &str,
            ) -> Result<bool, StorageError> {
                let done = sqlx::query(SET_DEVICE_DATA)
                    .bind(user)
                    .bind(id)
                    .bind(data)
                    .execute(&self.pool)
                    .await
                    .map_err(db("updating a device"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn add_enroll_link(
                &self,
                hash: &[u8],
                user: &str,
                now: i64,
                expires_at: i64,
            ) -> Result<(), StorageError> {
                sqlx::query(ADD_ENROLL_LINK)
                    .bind(hash)
                    .bind(user)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await
                    .map_err(db("storing an enrollment link"))?;
                Ok(())
            }

            async fn use_enroll_link(
                &self,
                hash: &[u8],
                now: i64,
            ) -> Result<Option<String>, StorageError> {
                let row = sqlx::query(USE_ENROLL_LINK)
                    .bind(hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("spending an enrollment link"))?;
                row.map(|r| r.try_get("user"))
                    .transpose()
                    .map_err(db("spending an enrollment link"))
            }

            async fn set_webhook(&self, user: &str, hook: &WebhookRow) -> Result<(), StorageError> {
                sqlx::query(SET_WEBHOOK)
                    .bind(user)
                    .bind(&hook.url)
                    .bind(&hook.secret)
                    .execute(&self.pool)
                    .await
                    .map_err(db("setting a webhook"))?;
                Ok(())
            }

            async fn load_webhook(&self, user: &str) -> Result<Option<WebhookRow>, StorageError> {
                let row = sqlx::query(LOAD_WEBHOOK)
                    .bind(user)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("reading a webhook"))?;
                row.map(|r| {
                    Ok::<_, sqlx::Error>(WebhookRow {
                        url: r.try_get("url")?,
                        secret: r.try_get("secret")?,
                    })
                })
                .transpose()
                .map_err(db("reading a webhook"))
            }

            async fn delete_webhook(&self, user: &str) -> Result<bool, StorageError> {
                let done = sqlx::query(DELETE_WEBHOOK)
                    .bind(user)
                    .execute(&self.pool)
                    .await
                    .map_err(db("removing a webhook"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn admit_approval(
                &self,
                row: &ApprovalRow,
                per_hour: i64,
                now: i64,
            ) -> Result<Admission, StorageError> {
                const DOING: &str = "storing a push request";
                if let Some(since) = self.push_block(&row.user).await? {
                    return Ok(Admission::Blocked { since });
                }
                let count: i64 = sqlx::query(COUNT_RECENT)
                    .bind(&row.user)
                    .bind(now - HOUR)
                    .fetch_one(&self.pool)
                    .await
                    .and_then(|r| r.try_get("n"))
                    .map_err(db(DOING))?;
                // Two racing requests may both count below the limit; the one-pending index
                // stores only one of them, so the limit is exceeded by none.
                if count >= per_hour {
                    return Ok(Admission::TooMany { count });
                }
                let inserted = sqlx::query(INSERT_APPROVAL)
                    .bind(&row.id)
                    .bind(&row.user)
                    .bind(&row.host)
                    .bind(&row.source)
                    .bind(&row.service)
                    .bind(&row.command)
                    .bind(row.number)
                    .bind(&row.choices)
                    .bind(row.created_at)
                    .bind(row.expires_at)
                    .execute(&self.pool)
                    .await;
                match inserted {
                    Ok(_) => Ok(Admission::Stored),
                    Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                        let id: Option<String> = sqlx::query(PENDING_OF_USER)
                            .bind(&row.user)
                            .fetch_optional(&self.pool)
                            .await
                            .and_then(|r| r.map(|r| r.try_get("id")).transpose())
                            .map_err(db(DOING))?;
                        Ok(Admission::AlreadyPending {
                            id: id.unwrap_or_default(),
                        })
                    }
                    Err(error) => Err(StorageError::Database {
                        doing: DOING,
                        error,
                    }),
                }
            }

            async fn load_approval(&self, id: &str) -> Result<Option<ApprovalRow>, StorageError> {
                let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("reading a push request"))?;
                row.map(|r| approval_row!(r))
                    .transpose()
                    .map_err(db("reading a push request"))
            }

            async fn pending_approvals(
                &self,
                user: &str,
                now: i64,
            ) -> Result<Vec<ApprovalRow>, StorageError> {
                let sql = format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE \"user\" = $1 \
                     AND state = 'pending' AND expires_at > $2 ORDER BY created_at DESC"
                );
                let rows = sqlx::query(&sql)
                    .bind(user)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("listing push requests"))?;
                rows.iter()
                    .map(|r| approval_row!(r))
                    .collect::<Result<_, _>>()
                    .map_err(db("listing push requests"))
            }

            async fn decide_approval(
                &self,
                id: &str,
                user: &str,
                verdict: Verdict,
                device: &str,
                now: i64,
            ) -> Result<Option<ApprovalRow>, StorageError> {
                const DOING: &str = "deciding a push request";
                let (state, number) = match verdict {
                    Verdict::Approve { number } => (ApprovalRow::APPROVED, Some(number)),
                    Verdict::Deny => (ApprovalRow::DENIED, None),
                    Verdict::Report => (ApprovalRow::REPORTED, None),
                };
                let sql = format!("{DECIDE}{APPROVAL_COLUMNS}");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .bind(user)
                    .bind(state)
                    .bind(now)
                    .bind(number)
                    .bind(device)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db(DOING))?;
                let Some(row) = row
                    .map(|r| approval_row!(r))
                    .transpose()
                    .map_err(db(DOING))?
                else {
                    return Ok(None);
                };
                if verdict == Verdict::Report {
                    sqlx::query(BLOCK)
                        .bind(user)
                        .bind(now)
                        .bind(id)
                        .execute(&self.pool)
                        .await
                        .map_err(db(DOING))?;
                }
                Ok(Some(row))
            }

            async fn expire_approvals(&self, now: i64) -> Result<Vec<ApprovalRow>, StorageError> {
                let sql = format!("{EXPIRE}{APPROVAL_COLUMNS}");
                let rows = sqlx::query(&sql)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db("expiring push requests"))?;
                rows.iter()
                    .map(|r| approval_row!(r))
                    .collect::<Result<_, _>>()
                    .map_err(db("expiring push requests"))
            }

            async fn push_block(&self, user: &str) -> Result<Option<i64>, StorageError> {
                let row = sqlx::query(PUSH_BLOCK)
                    .bind(user)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db("reading a push block"))?;
                row.map(|r| r.try_get("blocked_at"))
                    .transpose()
                    .map_err(db("reading a push block"))
            }

            async fn clear_push_block(&self, user: &str) -> Result<bool, StorageError> {
                let done = sqlx::query(CLEAR_BLOCK)
                    .bind(user)
                    .execute(&self.pool)
                    .await
                    .map_err(db("clearing a push block"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn announce_approval(&self, id: &str) -> Result<(), StorageError> {
                let announce: Option<&str> = $announce;
                if let Some(sql) = announce {
                    sqlx::query(sql)
                        .bind(APPROVAL_CHANNEL)
                        .bind(id)
                        .execute(&self.pool)
                        .await
                        .map_err(db("announcing a decision"))?;
                }
                Ok(())
            }
        }
    };
}

push_storage_impl!(SqliteStorage, None);
push_storage_impl!(PostgresStorage, Some("SELECT pg_notify($1, $2)"));

impl PostgresStorage {
    /// A connection listening on [`APPROVAL_CHANNEL`], for a replica to hear others' decisions.
    pub async fn approval_listener(&self) -> Result<sqlx::postgres::PgListener, StorageError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .map_err(db("listening for decisions"))?;
        listener
            .listen(APPROVAL_CHANNEL)
            .await
            .map_err(db("listening for decisions"))?;
        Ok(listener)
    }
}
