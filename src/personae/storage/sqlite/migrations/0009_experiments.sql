-- Experiments (docs/experiments.md): their definitions, the turns each variant ran, and the
-- thumbs up/down users gave replies.

CREATE TABLE experiments (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,  -- JSON, the YAML shape
    source TEXT NOT NULL,  -- 'api' or the YAML file it came from
    -- SHA-256 of that file when it was last read: a file read again unchanged leaves the
    -- stored experiment (ramped, killed over the API since) as it is.
    file_hash TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE experiment_turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id TEXT NOT NULL,
    variant TEXT NOT NULL,
    user_id TEXT NOT NULL,  -- the external id
    conversation_id TEXT,
    message_id TEXT,  -- the reply it stored; NULL when it stored none
    outcome TEXT NOT NULL,
    latency_ms REAL NOT NULL,
    tokens INTEGER NOT NULL,
    at TEXT NOT NULL
);

CREATE INDEX experiment_turns_by_experiment ON experiment_turns (experiment_id, variant);
CREATE INDEX experiment_turns_by_message ON experiment_turns (message_id);
CREATE INDEX experiment_turns_by_user ON experiment_turns (user_id);

CREATE TABLE message_feedback (
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,  -- the external id of the conversation's user
    value INTEGER NOT NULL CHECK (value IN (-1, 1)),
    at TEXT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);

-- A user erased (GDPR) takes their turn rows along; feedback goes with the messages.
CREATE TRIGGER experiment_turns_of_erased_user AFTER DELETE ON users
BEGIN
    DELETE FROM experiment_turns WHERE user_id = OLD.external_id;
END;
