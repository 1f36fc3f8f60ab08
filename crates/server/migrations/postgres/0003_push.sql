-- Push approval (issue 12) on PostgreSQL (the SQLite twin, with the reasons for each table, is
-- migrations/sqlite/0003_push.sql). Times are Unix seconds.

CREATE TABLE devices (
    id TEXT PRIMARY KEY NOT NULL,
    "user" TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    token_hash BYTEA UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX devices_user ON devices ("user");

CREATE TABLE approvals (
    id TEXT PRIMARY KEY NOT NULL,
    "user" TEXT NOT NULL,
    host TEXT NOT NULL,
    source TEXT,
    service TEXT NOT NULL,
    command TEXT,
    number BIGINT NOT NULL,
    choices TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    decided_at BIGINT,
    device TEXT
);
CREATE INDEX approvals_user_created ON approvals ("user", created_at);
CREATE UNIQUE INDEX approvals_one_pending ON approvals ("user") WHERE state = 'pending';

CREATE TABLE push_blocks (
    "user" TEXT PRIMARY KEY NOT NULL,
    blocked_at BIGINT NOT NULL,
    approval TEXT
);

CREATE TABLE webhooks (
    "user" TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    secret BYTEA NOT NULL
);

CREATE TABLE enroll_links (
    hash BYTEA PRIMARY KEY NOT NULL,
    "user" TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
