-- sshield-server's tables on PostgreSQL (the SQLite twin, with the reasons for each table, is
-- migrations/sqlite/0001_init.sql). Times are Unix seconds.

CREATE TABLE users (
    name TEXT PRIMARY KEY NOT NULL,
    sealed BYTEA NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    disabled BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE hosts (
    name TEXT PRIMARY KEY NOT NULL,
    public_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE join_tokens (
    hash BYTEA PRIMARY KEY NOT NULL,
    host TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE nonces (
    host TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (host, nonce)
);
CREATE INDEX nonces_ts ON nonces (ts);

CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    time BIGINT NOT NULL,
    host TEXT NOT NULL,
    "user" TEXT NOT NULL,
    source TEXT,
    service TEXT NOT NULL,
    method TEXT,
    outcome TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX audit_user_time ON audit ("user", time);
CREATE INDEX audit_host_time ON audit (host, time);
CREATE INDEX audit_time ON audit (time);
