"""Knowledge documents attached to characters (docs/memory.md, "Knowledge"): readers per
format, the indexer that keeps their chunks in the memory store, and the folder watcher."""
