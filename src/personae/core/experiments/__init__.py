"""Experiments: gray releases and A/B tests of characters, prompts and models (pure)."""
