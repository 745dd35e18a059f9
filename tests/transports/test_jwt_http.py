"""JWTs configured in settings authenticate HTTP requests as their subject."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt

from personae.app import build_app
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.transports.conftest import make_settings

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_a_jwt_acts_as_its_subject_and_a_bad_one_is_401(tmp_path: Path) -> None:
    jwt_settings = {"secret": SECRET, "audience": "personae", "issuer": "login"}
    settings = make_settings(tmp_path, security={"jwt": jwt_settings})
    claims = {"sub": "zoe", "aud": "personae", "iss": "login", "exp": int(time.time()) + 60}
    good = jwt.encode(claims, SECRET, algorithm="HS256")
    expired = jwt.encode(claims | {"exp": int(time.time()) - 120}, SECRET, algorithm="HS256")
    with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
        body = {"model": "aria", "messages": [{"role": "user", "content": "hi"}]}

        def chat(token: str, **extra: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.post(f"{url}/v1/chat/completions", json=body | extra, headers=headers)

        assert chat(good).status_code == 200
        assert chat(good, user="someone-else").status_code == 403
        assert chat(expired).status_code == 401
        assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 401
        listed = httpx.get(
            f"{url}/api/conversations", headers={"Authorization": f"Bearer {good}"}
        ).json()
        assert len(listed) == 1
