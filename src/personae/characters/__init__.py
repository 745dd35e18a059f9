"""Loading characters from files (native YAML today; Character Cards in a later issue)."""
