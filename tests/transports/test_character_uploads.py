"""POST /api/characters on a live server: admins upload cards that are served at once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from personae.app import build_app
from personae.settings import Settings
from personae.testing import FakeChatModel
from tests.characters.card_fixtures import card_charx, card_png, v2_card, v3_card
from tests.live_server import live_server
from tests.transports.conftest import REPO_CHARACTERS

ADMIN = {"Authorization": "Bearer sk-upload-admin"}


class Site:
    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.folder = folder

    def upload(self, files: Any = None, *, headers: Any = ADMIN, **kw: Any) -> httpx.Response:
        return httpx.post(
            f"{self.url}/api/characters", files=files, headers=headers, timeout=30, **kw
        )

    def chat(self, character: str) -> httpx.Response:
        body = {"model": character, "messages": [{"role": "user", "content": "Hello?"}]}
        return httpx.post(f"{self.url}/v1/chat/completions", json=body, headers=ADMIN, timeout=30)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    folder = tmp_path / "characters"
    shutil.copytree(REPO_CHARACTERS, folder)
    settings = Settings(
        data_dir=tmp_path / "data",
        characters_dir=folder,
        api_keys=["sk-upload-admin"],
        watch_characters=False,  # served because of the upload, not because a watcher saw it
        limits={"max_body_bytes": 4096, "max_upload_bytes": 65536},  # uploads: their own
    )
    with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
        httpx.post(
            f"{url}/api/admin/keys",
            json={"role": "user", "subject": "alice"},
            headers=ADMIN,
            timeout=30,
        ).raise_for_status()
        yield Site(url, folder)


def wren(**changes: Any) -> dict[str, Any]:
    card = v3_card()
    card["data"].update(changes)
    return card


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("wren.png", lambda: card_png(wren())),
        ("wren.charx", lambda: card_charx(wren())),
        ("wren.json", lambda: json.dumps(v2_card()).encode()),
    ],
)
def test_an_uploaded_card_is_stored_and_served_at_once(site: Site, name: str, body: Any) -> None:
    answer = site.upload({"file": (name, body(), "application/octet-stream")})

    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["name"] == "Wren Halloway"
    assert created["load_status"] == "ok"
    assert (site.folder / f"{created['id']}{Path(name).suffix}").is_file()
    assert site.chat(created["id"]).status_code == 200


def test_a_card_as_a_json_body(site: Site) -> None:
    answer = site.upload(
        content=json.dumps(v3_card()), headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert answer.status_code == 201, answer.text
    assert site.chat(answer.json()["id"]).status_code == 200


def test_an_existing_id_is_replaced_only_with_force(site: Site) -> None:
    first = site.upload({"file": ("wren.png", card_png(wren()), "image/png")})
    assert first.status_code == 201
    changed = card_png(wren(tags=["lighthouse"]))

    refused = site.upload({"file": ("wren.png", changed, "image/png")})
    assert refused.status_code == 409
    assert "force=true" in refused.json()["error"]["message"]

    replaced = site.upload({"file": ("wren.png", changed, "image/png")}, params={"force": "true"})
    assert replaced.status_code == 201
    assert replaced.json()["tags"] == ["lighthouse"]
    assert replaced.json()["version_hash"] != first.json()["version_hash"]
    audit = httpx.get(
        f"{site.url}/api/admin/audit", params={"action": "character.import"}, headers=ADMIN
    ).json()
    assert [(row["target"], row["details"]["force"]) for row in audit] == [
        ("wren-halloway", False),
        ("wren-halloway", True),
    ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"file": ("wren.png", b"\x89PNG\r\n\x1a\nnot really", "image/png")}, "wren.png"),
        ({"file": ("wren.gif", b"GIF89a", "image/gif")}, "unknown kind of file"),
        ({"file": ("wren.json", b'{"spec": "chara_card_v3"', "application/json")}, "wren.json"),
        ({"other": ("wren.png", b"x", "image/png")}, "field named 'file'"),
    ],
)
def test_bad_uploads_are_refused_and_change_nothing(
    site: Site, files: dict[str, Any], message: str
) -> None:
    before = sorted(p.name for p in site.folder.iterdir())

    answer = site.upload(files)

    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]["message"]
    assert sorted(p.name for p in site.folder.iterdir()) == before


def test_only_admins_upload(site: Site) -> None:
    card = {"file": ("wren.png", card_png(wren()), "image/png")}
    assert site.upload(card, headers={}).status_code == 401
    key = httpx.post(
        f"{site.url}/api/admin/keys",
        json={"role": "user", "subject": "bob"},
        headers=ADMIN,
        timeout=30,
    ).json()["token"]
    assert site.upload(card, headers={"Authorization": f"Bearer {key}"}).status_code == 403
    assert not (site.folder / "wren-halloway.png").exists()


def test_uploads_have_their_own_body_limit(site: Site) -> None:
    big_card = card_png(wren(description="A long story. " * 1000))  # ~14 KB
    assert 4096 < len(big_card) < 65536
    assert site.upload({"file": ("wren.png", big_card, "image/png")}).status_code == 201

    too_big = site.upload({"file": ("wren.png", b"\0" * 70_000, "image/png")})
    assert too_big.status_code == 413
    chat = {"model": "aria", "messages": [{"role": "user", "content": "x" * 5000}]}
    elsewhere = httpx.post(f"{site.url}/v1/chat/completions", json=chat, headers=ADMIN, timeout=30)
    assert elsewhere.status_code == 413  # every other route keeps max_body_bytes
