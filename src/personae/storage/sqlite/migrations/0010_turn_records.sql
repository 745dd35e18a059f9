-- Turn records (docs/replay.md): for a sampled share of conversations, what each reply's
-- prompt was made of and how the turn went, as JSON (core/turn_record.py: record_data).
-- A record goes with its reply (and so with its conversation and its user): erasing a user
-- or purging old messages leaves no record behind.
CREATE TABLE turn_records (
    turn_id TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX turn_records_by_conversation ON turn_records (conversation_id, created_at);
CREATE INDEX turn_records_by_age ON turn_records (created_at);
