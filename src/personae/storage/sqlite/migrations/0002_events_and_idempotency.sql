-- The event log of each conversation (for live fan-out and resume after a reconnect) and the
-- idempotency keys of user messages.

-- The seq of the newest stored event; the next event gets last_event_seq + 1.
ALTER TABLE conversations ADD COLUMN last_event_seq INTEGER NOT NULL DEFAULT 0;

-- One row per event, except that the deltas of a finished reply are stored as one row that
-- covers seq..last_seq (payload {"chunks": [...]}), so a reply costs a few rows, not hundreds.
CREATE TABLE events (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    CHECK (last_seq >= seq)
) WITHOUT ROWID;

-- A retried message.send with the same key finds the message it already stored.
CREATE TABLE idempotency_keys (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
