"""Long-term memory, the pure part: items and partitions, chunking, the rule-based fact
extractor and hybrid recall scoring. Stores and embedders live in adapters (docs/memory.md)."""
