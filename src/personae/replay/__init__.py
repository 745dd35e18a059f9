"""Replays of recorded conversations (docs/replay.md): ``runner`` re-runs a conversation's
user messages through a ``ChatService`` on a scratch store, ``terminal`` and ``html`` show
the side-by-side report."""
