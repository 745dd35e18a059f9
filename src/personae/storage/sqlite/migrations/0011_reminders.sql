-- Reminders (docs/skills.md): messages a character sends a user at a time. A row is claimed
-- (state 'claimed', claimed_at) in a transaction before it is delivered, so it is delivered
-- once even with two dispatchers or a restart; a claim older than the lease is taken again.

CREATE TABLE reminders (
    id TEXT PRIMARY KEY,
    user_external_id TEXT NOT NULL,
    character_id TEXT NOT NULL,
    -- Erasing the user (or the conversation) erases its reminders.
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    text TEXT NOT NULL,
    due_at TEXT NOT NULL,  -- UTC, fixed-width ISO: text order is time order
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'claimed', 'delivered', 'cancelled', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_at TEXT,
    finished_at TEXT,
    last_error TEXT,
    channel TEXT,  -- the chat platform it was set from, and the chat there
    chat TEXT
);

CREATE INDEX reminders_due ON reminders (state, due_at);
CREATE INDEX reminders_user ON reminders (user_external_id, state, due_at);
