-- Chat-platform channels (docs/channels.md): the durable outbox of platform messages, platform
-- identities and one-time link codes, chat bindings and chat conversations, and the turns a
-- channel started whose replies are not yet in the outbox.

CREATE TABLE channel_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- delivery order within a chat
    channel TEXT NOT NULL,
    chat TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('send', 'edit')),
    target TEXT,  -- the platform message an edit replaces
    reply_to TEXT,  -- the platform message a send answers
    text TEXT NOT NULL,
    dedupe_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    platform_id TEXT,  -- the platform's id of the delivered message
    created_at TEXT NOT NULL,
    finished_at TEXT
);

CREATE INDEX channel_outbox_pending ON channel_outbox (channel, state, chat, id);

-- A platform user linked to (or auto-created as) a Personae user, by external id.
CREATE TABLE platform_identities (
    platform TEXT NOT NULL,
    platform_user TEXT NOT NULL,
    user_external_id TEXT NOT NULL,
    linked_at TEXT NOT NULL,
    PRIMARY KEY (platform, platform_user)
);

CREATE TABLE channel_link_codes (
    code_hash TEXT PRIMARY KEY,  -- SHA-256 of the code; the code itself is never stored
    user_external_id TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE channel_chats (
    platform TEXT NOT NULL,
    chat TEXT NOT NULL,
    character_id TEXT NOT NULL,  -- bound with /character
    PRIMARY KEY (platform, chat)
);

CREATE TABLE channel_conversations (
    platform TEXT NOT NULL,
    chat TEXT NOT NULL,
    user_external_id TEXT NOT NULL,
    character_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    PRIMARY KEY (platform, chat, user_external_id, character_id)
);

CREATE TABLE channel_pending_replies (
    channel TEXT NOT NULL,
    reply_to TEXT NOT NULL,  -- the user message's id
    chat TEXT NOT NULL,
    user_external_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    after_seq INTEGER NOT NULL,
    platform_message TEXT,
    PRIMARY KEY (channel, reply_to)
);
