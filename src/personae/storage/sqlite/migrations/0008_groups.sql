-- Group chats: a conversation with several characters (its members, in speaking order of
-- the list) and possibly several users (its participants, besides its owner). A
-- conversation without members is a one-to-one chat, as before.
CREATE TABLE conversation_groups (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    seed TEXT NOT NULL  -- who speaks is drawn from it: the same seed replays the same way
);

CREATE TABLE conversation_members (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    character_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    muted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, character_id)
);

CREATE TABLE conversation_participants (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_participants_by_user ON conversation_participants (user_id);

-- Who said it, in a group: the character id of a reply, the external id of the user who
-- wrote a message. NULL in one-to-one chats.
ALTER TABLE messages ADD COLUMN speaker TEXT;
