"""Coordination between turns: locks, versioned state, event bus, rate limits."""
