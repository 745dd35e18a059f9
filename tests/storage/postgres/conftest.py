from __future__ import annotations

import pytest

from tests.postgres_server import shared_server


@pytest.fixture
def pg_url() -> str:
    """A fresh, empty database on the session's PostgreSQL."""
    return shared_server().create_database()
