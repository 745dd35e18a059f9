-- Conversations and long-term memory on PostgreSQL, shared by every node. The same tables as
-- the SQLite store's, with PostgreSQL types: timestamptz for times, boolean, jsonb for event
-- payloads and state, text[] for an item's source messages.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE users (
    id text PRIMARY KEY,
    external_id text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE conversations (
    -- Creation order (SQLite's rowid): breaks ties between equal updated_at.
    pk bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id text PRIMARY KEY,
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    character_id text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- The seq of the newest message; the next message gets last_seq + 1 under the row's lock.
    last_seq integer NOT NULL DEFAULT 0,
    last_event_seq integer NOT NULL DEFAULT 0
);

CREATE INDEX conversations_by_user_character
    ON conversations (user_id, character_id, updated_at);

CREATE TABLE messages (
    id text PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    role text NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content text NOT NULL,
    status text NOT NULL,
    model text,
    prompt_tokens integer,
    completion_tokens integer,
    latency_ms double precision,
    created_at timestamptz NOT NULL,
    character_version text,
    speaker text,
    swipe_of text,
    hidden boolean NOT NULL DEFAULT false,
    edited_at timestamptz,
    -- Two writers can never store the same seq, whatever the code above does.
    UNIQUE (conversation_id, seq)
);

CREATE INDEX messages_swipes ON messages (conversation_id, swipe_of) WHERE swipe_of IS NOT NULL;

CREATE TABLE events (
    conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    last_seq integer NOT NULL,
    event text NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, seq),
    CHECK (last_seq >= seq)
);

CREATE TABLE idempotency_keys (
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key text NOT NULL,
    message_id text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE TABLE conversation_state (
    conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    key text NOT NULL,
    version integer NOT NULL CHECK (version >= 1),
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (conversation_id, key)
);

CREATE TABLE conversation_groups (
    conversation_id text PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    seed text NOT NULL
);

CREATE TABLE conversation_members (
    conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    character_id text NOT NULL,
    position integer NOT NULL,
    muted boolean NOT NULL DEFAULT false,
    PRIMARY KEY (conversation_id, character_id)
);

CREATE TABLE conversation_participants (
    conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (conversation_id, user_id)
);

CREATE INDEX conversation_participants_by_user ON conversation_participants (user_id);

CREATE TABLE memory_items (
    pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    scope text NOT NULL CHECK (scope IN ('private', 'knowledge')),
    user_id text NOT NULL,                 -- '' for knowledge
    character_id text NOT NULL,            -- '*' for knowledge of every character
    text text NOT NULL CHECK (btrim(text) <> ''),
    -- The text's words folded and without accents (core.memory.terms.words, as SQLite's
    -- unicode61 tokenizer sees them): PostgreSQL's unaccent is a contrib module that managed
    -- servers may lack, so the folding happens before the text arrives.
    search_text text NOT NULL,
    search tsvector GENERATED ALWAYS AS (to_tsvector('english', search_text)) STORED,
    kind text NOT NULL,
    importance double precision NOT NULL CHECK (importance BETWEEN 0 AND 1),
    created_at timestamptz NOT NULL,
    source_message_ids text[] NOT NULL DEFAULT '{}',
    embedding_model text,                  -- NULL while pending
    embedding_dimension integer,
    CHECK ((embedding_model IS NULL) = (embedding_dimension IS NULL)),
    CHECK ((scope = 'private') = (user_id <> ''))
);

CREATE INDEX memory_items_partition ON memory_items (user_id, character_id, scope, created_at);
CREATE INDEX memory_items_created ON memory_items (scope, created_at);
CREATE INDEX memory_items_embedding ON memory_items (embedding_model, embedding_dimension);
CREATE INDEX memory_items_search ON memory_items USING gin (search);

-- One vector table per embedding space (model, dimension), made by the memory store the first
-- time it opens with that space: memory_vectors_<id>, a vector(<dimension>) column with an
-- HNSW index (vector_cosine_ops).
CREATE TABLE memory_vector_spaces (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name text NOT NULL,
    dimension integer NOT NULL CHECK (dimension > 0),
    created_at timestamptz NOT NULL,
    UNIQUE (model_name, dimension)
);
