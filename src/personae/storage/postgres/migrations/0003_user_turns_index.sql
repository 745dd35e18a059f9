-- Every turn counts the user's messages of its conversation (the lorebook's turn number):
-- an index of the user's messages alone answers that count without reading every message.
CREATE INDEX messages_user_turns ON messages (conversation_id) WHERE role = 'user';
