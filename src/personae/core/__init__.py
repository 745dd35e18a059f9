"""The domain core: pure Python, no network, no database, no framework."""
