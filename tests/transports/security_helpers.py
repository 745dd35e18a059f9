"""A live server with one key of each role, for the RBAC, admin and rate-limit tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from personae.app import build_app
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.transports.conftest import make_settings

ADMIN_KEY = "sk-admin-test-key"  # from settings: an admin key, as before roles existed


@dataclass
class Deployment:
    url: str
    model: FakeChatModel
    db: Path
    keys: dict[str, str] = field(default_factory=dict)  # name -> token
    key_ids: dict[str, str] = field(default_factory=dict)

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def issue(self, name: str, role: str, subject: str, tenant: str = "default") -> str:
        answer = self.call(
            "admin",
            "POST",
            "/api/admin/keys",
            json={"role": role, "subject": subject, "tenant": tenant},
        )
        assert answer.status_code == 201, answer.text
        self.keys[name] = answer.json()["token"]
        self.key_ids[name] = answer.json()["id"]
        return self.keys[name]

    def chat(self, who: str, user: str | None = None, text: str = "hi") -> httpx.Response:
        body: dict[str, Any] = {"model": "aria", "messages": [{"role": "user", "content": text}]}
        if user is not None:
            body["user"] = user
        return self.call(who, "POST", "/v1/chat/completions", json=body)


@contextmanager
def deployment(tmp_path: Path, **overrides: Any) -> Iterator[Deployment]:
    settings = make_settings(tmp_path, api_keys=[ADMIN_KEY], **overrides)
    model = FakeChatModel()
    with live_server(build_app(settings, backends={"fake": model})) as url:
        d = Deployment(url, model, settings.database_path, keys={"admin": ADMIN_KEY})
        d.issue("alice", "user", "alice")
        d.issue("bob", "user", "bob")
        d.issue("acme-bot", "service", "bot", tenant="acme")
        d.issue("stored-admin", "admin", "ops")
        yield d
