-- sshield-server's tables on SQLite (the PostgreSQL twin is migrations/postgres/0001_init.sql).
-- Times are Unix seconds.

-- One row per user. `sealed` is the whole record (secrets, backup-code hashes, login state),
-- encrypted with the key kept outside the database (docs/server.md, "Encryption at rest");
-- `state` and `disabled` are plaintext copies for listing without the key. `version` grows by
-- one on every write: a write names the version it read (compare-and-swap), so two replicas
-- that accept the same code cannot both store it.
CREATE TABLE users (
    name TEXT PRIMARY KEY NOT NULL,
    sealed BLOB NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    disabled INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Hosts that joined, by their ed25519 public key. A revoked host stays listed.
CREATE TABLE hosts (
    name TEXT PRIMARY KEY NOT NULL,
    public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- One-time join tokens: only their SHA-256 is stored, so a copy of the database joins nothing.
CREATE TABLE join_tokens (
    hash BLOB PRIMARY KEY NOT NULL,
    host TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

-- Nonces of signed host requests seen within the accepted clock skew: a request replayed
-- with the same nonce is refused. Older rows are pruned.
CREATE TABLE nonces (
    host TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (host, nonce)
);
CREATE INDEX nonces_ts ON nonces (ts);

-- Every decision, as the host logs it to syslog.
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    host TEXT NOT NULL,
    user TEXT NOT NULL,
    source TEXT,
    service TEXT NOT NULL,
    method TEXT,
    outcome TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX audit_user_time ON audit (user, time);
CREATE INDEX audit_host_time ON audit (host, time);
CREATE INDEX audit_time ON audit (time);
