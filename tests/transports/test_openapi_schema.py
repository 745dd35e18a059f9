"""schemathesis against the generated OpenAPI document, on a live server: every operation
with a few generated requests (stateless, bounded), no 5xx, answers that match the schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from personae.app import build_app
from personae.settings import Settings
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.transports.conftest import make_settings

ADMIN_KEY = "sk-schemathesis-admin-key"


def app_settings(folder: Path) -> Settings:
    return make_settings(
        folder,
        api_keys=[ADMIN_KEY],  # an admin: every route is reachable, none closes the server
        watch_characters=False,
        security={"rate_limits": {"admin": {"requests_per_minute": None}}},
    )


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = app_settings(tmp_path_factory.mktemp("schema"))
    with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
        yield url


# The document as the app generates it (building the app opens nothing).
schema = schemathesis.openapi.from_dict(
    build_app(app_settings(Path("unused")), backends={"fake": FakeChatModel()}).openapi()
)


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_without_5xx_and_within_its_schema(
    case: schemathesis.Case, base_url: str
) -> None:
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
        timeout=10,
    )
