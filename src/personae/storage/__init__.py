"""Storage adapters: the ConversationStore (and later MemoryStore) on SQLite and PostgreSQL."""
