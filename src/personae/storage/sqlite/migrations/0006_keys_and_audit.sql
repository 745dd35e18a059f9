-- API keys (only a SHA-256 of each secret is kept; the key is shown once, at creation) and
-- the audit log of admin actions and model calls.

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,  -- the visible part of pk_<id>_<secret>
    secret_hash TEXT NOT NULL,  -- hex SHA-256 of the secret
    role TEXT NOT NULL CHECK (role IN ('admin', 'user', 'service')),
    subject TEXT NOT NULL,
    tenant TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so an export can resume after one
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    outcome TEXT NOT NULL,
    target TEXT,
    role TEXT,
    tenant TEXT,
    key_id TEXT,
    client TEXT,
    details TEXT NOT NULL DEFAULT '{}'  -- JSON, never message text
);

CREATE INDEX audit_log_by_time ON audit_log (at);
CREATE INDEX audit_log_by_actor ON audit_log (actor, at);
CREATE INDEX audit_log_by_action ON audit_log (action, at);
