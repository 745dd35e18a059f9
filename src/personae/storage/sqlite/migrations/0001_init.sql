-- Users, their conversations with characters, and the messages of each conversation.
-- Timestamps are UTC ISO-8601 text with microseconds and a "+00:00" suffix, so text order is
-- time order.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    external_id TEXT UNIQUE NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    character_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    -- The seq of the newest message; the next message gets last_seq + 1.
    last_seq INTEGER NOT NULL DEFAULT 0
);

-- "The user's most recently active conversation with this character", and listings.
CREATE INDEX conversations_by_user_character
    ON conversations (user_id, character_id, updated_at);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL,
    status TEXT NOT NULL,
    model TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_ms REAL,
    created_at TEXT NOT NULL,
    UNIQUE (conversation_id, seq)
);
