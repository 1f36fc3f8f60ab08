-- Offline logins (docs/server.md, "Offline logins"): the reports hosts sent of what they
-- decided while no server answered, one row per (host, id), so a report sent again (the host
-- never heard the answer) is counted once. `time` is when the server recorded it; rows are
-- pruned with the audit log (audit_retention). The twin of the other backend's 0005_offline.sql.
CREATE TABLE offline_reports (
    host TEXT NOT NULL,
    id TEXT NOT NULL,
    time BIGINT NOT NULL,
    PRIMARY KEY (host, id)
);
CREATE INDEX offline_reports_time ON offline_reports (time);
