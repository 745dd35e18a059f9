-- Long-term memory (docs/memory.md). Items are the truth; memory_fts and the vec0 tables
-- memory_vectors_<space id> are indexes written beside them (storage/sqlite/memory_rows.py).

CREATE TABLE memory_items (
    pk INTEGER PRIMARY KEY,                -- rowid of the item in memory_fts and vec0 tables
    id TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL CHECK (scope IN ('private', 'knowledge')),
    user_id TEXT NOT NULL,                 -- '' for knowledge
    character_id TEXT NOT NULL,            -- '*' for knowledge of every character
    text TEXT NOT NULL CHECK (trim(text) <> ''),
    kind TEXT NOT NULL,
    importance REAL NOT NULL CHECK (importance BETWEEN 0 AND 1),
    created_at TEXT NOT NULL,
    source_message_ids TEXT NOT NULL DEFAULT '[]',  -- JSON array of message ids
    embedding_model TEXT,                  -- NULL while pending
    embedding_dimension INTEGER,
    CHECK ((embedding_model IS NULL) = (embedding_dimension IS NULL)),
    CHECK ((scope = 'private') = (user_id <> ''))
);

-- A partition's items newest first; also every item of a user (delete_user).
CREATE INDEX memory_items_partition
    ON memory_items (user_id, character_id, scope, created_at);
CREATE INDEX memory_items_created ON memory_items (scope, created_at);
-- Finds items still to embed in the current space without scanning the table.
CREATE INDEX memory_items_embedding ON memory_items (embedding_model, embedding_dimension);

-- Full text: contentless (the text lives in memory_items), rows deleted by rowid. ``part``
-- holds the partition's token, so a search touches only its partitions' rows.
CREATE VIRTUAL TABLE memory_fts USING fts5(
    text,
    part,
    content = '',
    contentless_delete = 1,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- One vec0 table per embedding model and dimension, created when a store first uses it:
-- vectors of different models are never compared, and a new model means re-embedding.
CREATE TABLE memory_vector_spaces (
    id INTEGER PRIMARY KEY,
    model_name TEXT NOT NULL,
    dimension INTEGER NOT NULL CHECK (dimension > 0),
    created_at TEXT NOT NULL,
    UNIQUE (model_name, dimension)
);

-- Rank by the text column only: the partition token is a filter, not evidence.
INSERT INTO memory_fts (memory_fts, rank) VALUES ('rank', 'bm25(1.0, 0.0)');
