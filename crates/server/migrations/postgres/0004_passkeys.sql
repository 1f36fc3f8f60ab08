-- Passkeys for push approval (issue 12) on PostgreSQL (the SQLite twin, with the comments,
-- is migrations/sqlite/0004_passkeys.sql).

CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY NOT NULL,
    device TEXT NOT NULL UNIQUE,
    "user" TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX passkeys_user ON passkeys ("user");

CREATE TABLE webauthn_ceremonies (
    ceremony TEXT PRIMARY KEY NOT NULL,
    "user" TEXT NOT NULL,
    state TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
