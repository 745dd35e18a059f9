"""The one error a lorebook raises while it is read."""

from __future__ import annotations


class LorebookError(ValueError):
    """A lorebook that cannot be used, with the path of the problem in the message
    (``entries.2.keys.0: ...``). A ``ValueError``, so a pydantic validator reports it as is."""
