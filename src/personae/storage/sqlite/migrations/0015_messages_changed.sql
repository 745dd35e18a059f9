-- A counter of every edit and deletion of a conversation's messages, kept by SQLite itself.
-- A process that holds a conversation's recent messages in memory (message_windows.py) reads
-- this number and ``last_seq`` instead of every message again: the counter unmoved, what it
-- holds is still true and only messages after the ``last_seq`` it saw are new. Any change, by
-- anyone (this process, another worker on the same file, a command-line tool), moves it.
-- New messages do not: they only ever come after ``last_seq``.
ALTER TABLE conversations ADD COLUMN messages_changed INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER messages_updated AFTER UPDATE ON messages BEGIN
    UPDATE conversations SET messages_changed = messages_changed + 1
        WHERE id IN (OLD.conversation_id, NEW.conversation_id);
END;

CREATE TRIGGER messages_deleted AFTER DELETE ON messages BEGIN
    UPDATE conversations SET messages_changed = messages_changed + 1
        WHERE id = OLD.conversation_id;
END;
