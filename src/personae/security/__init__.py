"""Who may call, as whom, how often: API keys and JWTs, rate limits, the audit of admin
actions and model calls (docs/operations.md, "Security")."""
