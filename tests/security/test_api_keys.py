"""Key lifetimes as the CLI and the admin API read them. The key store and the registry over
it are tested on every backend in tests/contracts/test_key_store.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

from personae.errors import InvalidInput
from personae.security.api_keys import parse_duration


def test_durations() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("2w") == timedelta(weeks=2)
    for bad in ("0d", "30", "d", "-1d", "1y"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)
