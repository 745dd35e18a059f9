-- Every turn with memory on reads the partition's facts for the profile. Through the
-- partition index that read went through every item of the partition, newest first, and
-- looked up each row to test its kind: it grew with the conversation (401 µs a turn after
-- 50 turns of each conversation). This index holds the facts alone, in the order asked for.
CREATE INDEX memory_items_facts ON memory_items (user_id, character_id, scope, created_at)
    WHERE kind >= 'fact:' AND kind < 'fact;';
