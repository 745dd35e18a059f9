"""Authentication and, later, roles and rate limits."""
