-- Failures per source over all users: see migrations/sqlite/0002_sources.sql.
CREATE TABLE source_failures (
    source TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX source_failures_expires_at ON source_failures (expires_at);
