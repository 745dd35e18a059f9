-- API keys and the audit log, shared by every node: a key issued on one node authenticates
-- on all, and the audit log holds every node's rows. The same tables as SQLite's.

CREATE TABLE api_keys (
    id text PRIMARY KEY,  -- the visible part of pk_<id>_<secret>
    secret_hash text NOT NULL,  -- hex SHA-256 of the secret
    role text NOT NULL CHECK (role IN ('admin', 'user', 'service')),
    subject text NOT NULL,
    tenant text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    revoked_at timestamptz
);

CREATE TABLE audit_log (
    -- Never reused, so an export can resume after one. Identity values are handed out in
    -- the order rows are inserted, not committed: two nodes writing at once may commit out
    -- of id order (an export resuming after an id may miss a row committed late).
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL,
    action text NOT NULL,
    actor text NOT NULL,
    outcome text NOT NULL,
    target text,
    role text,
    tenant text,
    key_id text,
    client text,
    -- json, not jsonb: kept as written, and a "\u0000" that jsonb refuses is stored as on
    -- SQLite. Never message text.
    details json NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_by_time ON audit_log (at);
CREATE INDEX audit_log_by_actor ON audit_log (actor, at);
CREATE INDEX audit_log_by_action ON audit_log (action, at);

