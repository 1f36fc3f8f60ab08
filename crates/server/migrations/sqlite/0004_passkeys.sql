-- Passkeys for push approval (issue 12) on SQLite (the PostgreSQL twin is
-- migrations/postgres/0004_passkeys.sql).

-- A device's passkey (WebAuthn, user verification required): registered when the device
-- enrolled by link, needed for every Approve from that device. `credential_id` (base64url) is
-- unique across every user, as WebAuthn §7.1 step 22 asks: one authenticator's credential
-- never answers for two accounts. `passkey` is webauthn-rs's `Passkey` as JSON: the public
-- key and the signature counter, no secret. Revoking the device (devices.revoked_at) ends it.
CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY NOT NULL,
    device TEXT NOT NULL UNIQUE,
    user TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX passkeys_user ON passkeys (user);

-- The server's half of a WebAuthn ceremony between its two requests: a registration begun
-- with an enrollment link (`enroll:<link hash>`) or an approval's challenge for one device
-- (`approve:<request>:<device>`). Taken by the one DELETE that finds it unexpired, so each
-- challenge answers once, on any replica.
CREATE TABLE webauthn_ceremonies (
    ceremony TEXT PRIMARY KEY NOT NULL,
    user TEXT NOT NULL,
    state TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
