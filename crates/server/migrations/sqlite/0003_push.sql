-- Push approval (issue 12) on SQLite (the PostgreSQL twin is migrations/postgres/0003_push.sql).
-- Numbered after the issue so that other tables added meanwhile keep their own numbers.

-- A user's devices: a browser's Web Push subscription (`kind` = 'webpush', `data` its
-- endpoint and keys as JSON) and, later, passkeys. `token_hash` is the SHA-256 of the bearer
-- token the device's web app sends: a copy of the database signs in as no device. A revoked
-- device stays listed and can no longer approve.
CREATE TABLE devices (
    id TEXT PRIMARY KEY NOT NULL,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    token_hash BLOB UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX devices_user ON devices (user);

-- Logins waiting for the user's approval. `number` is the one the SSH prompt shows; `choices`
-- the three the approval page offers (the number among them), comma-separated. `state` is
-- pending, approved, denied (Deny or a wrong number), reported ("This wasn't me") or expired.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY NOT NULL,
    user TEXT NOT NULL,
    host TEXT NOT NULL,
    source TEXT,
    service TEXT NOT NULL,
    command TEXT,
    number INTEGER NOT NULL,
    choices TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    decided_at INTEGER,
    device TEXT
);
CREATE INDEX approvals_user_created ON approvals (user, created_at);
-- One pending request per user, decided by the database: of two racing pushes one is stored.
CREATE UNIQUE INDEX approvals_one_pending ON approvals (user) WHERE state = 'pending';

-- Users whose pushes are blocked after "This wasn't me", until an admin clears it.
CREATE TABLE push_blocks (
    user TEXT PRIMARY KEY NOT NULL,
    blocked_at INTEGER NOT NULL,
    approval TEXT
);

-- A user's webhook: where to POST and the HMAC key (the receiver holds the same key).
CREATE TABLE webhooks (
    user TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    secret BLOB NOT NULL
);

-- One-time enrollment links (`push enroll-link USER`): only the token's SHA-256 is stored, so
-- a copy of the database enrolls no device. Spent by the one UPDATE that finds it unused and
-- unexpired.
CREATE TABLE enroll_links (
    hash BLOB PRIMARY KEY NOT NULL,
    user TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
