"""The RBAC matrix: each role x each endpoint x its own or another user's resource, with the
status expected, on a live server. Roles: ``admin`` (a settings key), ``stored-admin`` (an
admin key from the key store), users ``alice`` and ``bob``, and ``acme-bot``, a service of
tenant ``acme`` acting for its users; ``None`` is no key at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.transports.security_helpers import Deployment, deployment

ROLES = ("admin", "stored-admin", "alice", "acme-bot")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("rbac")) as d:
        # Resources: alice's and bob's conversations, and carol's in tenant acme.
        for who, user in (("alice", None), ("bob", None), ("acme-bot", "carol")):
            answer = d.chat(who, user)
            assert answer.status_code == 200, answer.text
            d.key_ids[f"conv:{who}"] = answer.headers["X-Personae-Conversation"]
        yield d


# Whose resource each role treats as its own, and someone else's; ``user`` values as the
# caller names them (a service names its tenant's users by their bare names).
OWN = {"admin": "alice", "stored-admin": "alice", "alice": "alice", "acme-bot": "carol"}
OTHER = {"admin": "bob", "stored-admin": "bob", "alice": "bob", "acme-bot": "default/alice"}
OWN_CONVERSATION = {"admin": None, "stored-admin": None, "alice": "alice", "acme-bot": "acme-bot"}

# endpoint -> (status for own resource, status for other's resource) per role; admins act for
# anyone, a user only for itself, a service only inside its tenant.
MATRIX: dict[str, dict[str, tuple[int, int]]] = {
    "chat": {
        "admin": (200, 200),
        "stored-admin": (200, 200),
        "alice": (200, 403),
        "acme-bot": (200, 403),
    },
    "list_conversations": {
        "admin": (200, 200),
        "stored-admin": (200, 200),
        "alice": (200, 403),
        "acme-bot": (200, 403),
    },
    "export_user": {
        "admin": (200, 200),
        "stored-admin": (200, 200),
        "alice": (200, 403),
        "acme-bot": (200, 403),
    },
}


def own_and_other(d: Deployment, role: str, endpoint: str) -> tuple[int, int]:
    own, other = OWN[role], OTHER[role]
    if endpoint == "chat":
        return d.chat(role, own).status_code, d.chat(role, other).status_code
    if endpoint == "list_conversations":
        path = "/api/conversations"
        return (
            d.call(role, "GET", path, params={"user": own}).status_code,
            d.call(role, "GET", path, params={"user": other}).status_code,
        )
    assert endpoint == "export_user"
    return (
        d.call(role, "GET", f"/api/users/{own}/export").status_code,
        d.call(role, "GET", f"/api/users/{other}/export").status_code,
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", sorted(MATRIX))
def test_acting_for_own_and_other_users(live: Deployment, role: str, endpoint: str) -> None:
    assert own_and_other(live, role, endpoint) == MATRIX[endpoint][role]


@pytest.mark.parametrize(
    ("role", "expected"),
    [("admin", (200, 200)), ("alice", (200, 404)), ("bob", (404, 200)), ("acme-bot", (404, 404))],
)
def test_messages_of_a_conversation_only_for_its_owner(
    live: Deployment, role: str, expected: tuple[int, int]
) -> None:
    """Someone else's conversation is reported missing, not forbidden. An admin reads it by
    naming its owner."""
    statuses = []
    for owner in ("alice", "bob"):
        params = {"user": owner} if role == "admin" else {}
        conversation = live.key_ids[f"conv:{owner}"]
        path = f"/api/conversations/{conversation}/messages"
        statuses.append(live.call(role, "GET", path, params=params).status_code)
    assert tuple(statuses) == expected


def test_a_service_reaches_its_tenants_users_only(live: Deployment) -> None:
    carol = live.key_ids["conv:acme-bot"]
    path = f"/api/conversations/{carol}/messages"
    assert live.call("acme-bot", "GET", path, params={"user": "carol"}).status_code == 200
    # The same name in the default tenant is another person: alice's key cannot see carol's.
    assert live.call("alice", "GET", path).status_code == 404
    # Carol of acme is stored as acme/carol; only an admin names her so.
    listed = live.call("admin", "GET", "/api/conversations", params={"user": "acme/carol"})
    assert [c["id"] for c in listed.json()] == [carol]
    assert live.call("admin", "GET", "/api/conversations", params={"user": "carol"}).json() == []


# What an admin gets: the key listing, a new key, "no such key" (the route ran), the audit.
@pytest.mark.parametrize(
    ("method", "path", "admin_status"),
    [
        ("GET", "/api/admin/keys", 200),
        ("POST", "/api/admin/keys", 201),
        ("DELETE", "/api/admin/keys/ffffffff", 404),
        ("GET", "/api/admin/audit", 200),
    ],
)
@pytest.mark.parametrize(
    ("role", "allowed"),
    [("admin", True), ("stored-admin", True), ("alice", False), ("acme-bot", False), (None, False)],
)
def test_admin_routes_are_for_admins_only(
    live: Deployment, method: str, path: str, admin_status: int, role: str | None, allowed: bool
) -> None:
    body = {"role": "user", "subject": "temp"} if method == "POST" else None
    answer = live.call(role, method, path, json=body)
    refused = 401 if role is None else 403
    assert answer.status_code == (admin_status if allowed else refused), answer.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("GET", "/v1/models/aria"),
        ("GET", "/api/characters"),
        ("GET", "/api/characters/aria"),
        ("GET", "/api/characters/aria/versions"),
        ("GET", "/api/conversations"),
    ],
)
@pytest.mark.parametrize("role", [*ROLES, "bob", None])
def test_shared_read_routes_need_any_valid_key(
    live: Deployment, method: str, path: str, role: str | None
) -> None:
    assert live.call(role, method, path).status_code == (401 if role is None else 200)


@pytest.mark.parametrize(
    ("role", "own", "other", "expected"),
    [
        ("admin", "dora", "erin", (200, 200)),
        ("alice", "alice", "bob", (200, 403)),
        ("acme-bot", "frank", "default/bob", (200, 403)),
    ],
)
def test_erasing_a_user(
    tmp_path: Path, role: str, own: str, other: str, expected: tuple[int, int]
) -> None:
    with deployment(tmp_path) as d:
        for who in ("alice", "bob"):
            assert d.chat(who).status_code == 200
        for user in ("dora", "erin"):
            assert d.chat("admin", user).status_code == 200
        assert d.chat("acme-bot", "frank").status_code == 200
        statuses = (
            d.call(role, "DELETE", f"/api/users/{own}").status_code,
            d.call(role, "DELETE", f"/api/users/{other}").status_code,
        )
        assert statuses == expected
        # The other user's data is untouched when the erasure was refused.
        if expected[1] == 403:
            admin_name = other.replace("default/", "")
            assert d.call("admin", "GET", f"/api/users/{admin_name}/export").status_code == 200
