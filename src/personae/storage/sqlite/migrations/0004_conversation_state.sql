-- Versioned state per conversation and key (a character's behaviour machine, for one): the
-- value is JSON; version counts the writes, so a writer that read version N can refuse to
-- overwrite a state someone else moved in the meantime (ConversationStore.put_state).

CREATE TABLE conversation_state (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (conversation_id, key)
) WITHOUT ROWID;
