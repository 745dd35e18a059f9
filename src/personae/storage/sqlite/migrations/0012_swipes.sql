-- Redo turns (docs/protocol.md, "Regenerate, swipes and edits"): a reply's alternatives and
-- edits of a user message. Nothing is deleted: a message out of the history is hidden.

-- The first reply of the alternatives a regenerated reply joins; NULL: not an alternative.
ALTER TABLE messages ADD COLUMN swipe_of TEXT;
-- 1: not in the conversation's history (an alternative not chosen, a reply to an old text).
ALTER TABLE messages ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1));
-- When a user message's text was last replaced.
ALTER TABLE messages ADD COLUMN edited_at TEXT;

CREATE INDEX messages_swipes ON messages (conversation_id, swipe_of) WHERE swipe_of IS NOT NULL;
