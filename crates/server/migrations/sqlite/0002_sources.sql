-- Failures per source over all users (core's per-source table, docs/ratelimit.md): one row per
-- source key (an IPv4 address, an IPv6 network, `name:HOST`). `state` is core's FailureCount
-- as JSON; `version` grows by one on every write (compare-and-swap, as for users), so replicas
-- count every failure. `expires_at` is when nothing in it matters any more; older rows are
-- pruned. The PostgreSQL twin is migrations/postgres/0002_sources.sql.
CREATE TABLE source_failures (
    source TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,
    version INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX source_failures_expires_at ON source_failures (expires_at);
