-- Full text keyed by partition. memory_fts had the words in one column and the partition's
-- token in another, to filter on: a common word's doclist then spanned every user, so a search
-- grew with the whole table (390 µs at 2,000 items, 4.1 ms at 100,000 for a partition of 100).
-- Now each word is indexed with its partition's token in front of it, one term
-- (memory_rows.fts_terms), and a search asks for its partitions' terms alone. BM25 then counts
-- a word's frequency within its partition, which is the collection a search ranks anyway.
-- The items are indexed again from memory_items (the text lives there): memory_fts_terms is a
-- Python function the migration runner registers (memory_rows.register_functions).
DROP TABLE memory_fts;

CREATE VIRTUAL TABLE memory_fts USING fts5(
    terms,
    content = '',
    contentless_delete = 1,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

INSERT INTO memory_fts (rowid, terms)
    SELECT pk, memory_fts_terms(scope, user_id, character_id, text) FROM memory_items;
