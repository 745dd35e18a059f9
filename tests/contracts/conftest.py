from __future__ import annotations

from pathlib import Path

import pytest

from tests.contracts.shared_stores import BACKENDS, Backend


@pytest.fixture(params=sorted(BACKENDS))
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Fresh storage on each backend of the shared stores (``shared_stores.py``)."""
    return BACKENDS[request.param](tmp_path)
