"""Avatars and exports of characters on a live server: a PNG card's picture as a small WebP
with no card text in it, a generated one for a YAML character, cached by version; exports in
every card format, for admins only, audited."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from personae.app import build_app
from personae.characters.avatar import MAX_PIXELS, avatar, thumbnail
from personae.characters.cards.codec import decode_character
from personae.core.characters import Character
from personae.settings import Settings
from personae.testing import FakeChatModel
from tests.characters.card_fixtures import card_png, v3_card
from tests.live_server import live_server
from tests.transports.conftest import REPO_CHARACTERS

ADMIN = {"Authorization": "Bearer sk-media-admin"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("media")
    folder = root / "characters"
    shutil.copytree(REPO_CHARACTERS, folder)
    settings = Settings(
        data_dir=root / "data",
        characters_dir=folder,
        api_keys=["sk-media-admin"],
        watch_characters=False,
    )
    with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
        issued = httpx.post(
            f"{url}/api/admin/keys",
            json={"role": "user", "subject": "alice"},
            headers=ADMIN,
            timeout=30,
        )
        issued.raise_for_status()
        yield url, {"Authorization": f"Bearer {issued.json()['token']}"}


def picture(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_a_png_card_s_avatar_is_a_small_webp_without_the_card(
    site: tuple[str, dict[str, str]],
) -> None:
    url, alice = site
    original = (REPO_CHARACTERS / "juniper-quill.png").read_bytes()

    answer = httpx.get(f"{url}/api/characters/juniper-quill/avatar", headers=alice, timeout=30)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/webp"
    image = picture(answer.content)
    assert image.format == "WEBP"
    assert max(image.size) <= 128
    assert len(answer.content) < len(original)
    assert b"chara" not in answer.content
    assert b"ccv3" not in answer.content


def test_an_avatar_is_cached_by_its_version(site: tuple[str, dict[str, str]]) -> None:
    url, alice = site
    first = httpx.get(f"{url}/api/characters/aria/avatar", headers=alice, timeout=30)
    assert first.status_code == 200
    picture(first.content)  # a YAML character: the generated picture, as a real image
    again = httpx.get(
        f"{url}/api/characters/aria/avatar",
        headers={**alice, "If-None-Match": first.headers["etag"]},
        timeout=30,
    )
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/characters/nobody/avatar", "alice", 404),
        ("/api/characters/aria/avatar", None, 401),
        ("/api/characters/aria/export?format=v2", "alice", 403),
        ("/api/characters/aria/export?format=gif", "admin", 400),
        ("/api/characters/nobody/export", "admin", 404),
    ],
)
def test_refusals(
    site: tuple[str, dict[str, str]], path: str, headers: str | None, status: int
) -> None:
    url, alice = site
    chosen = {"alice": alice, "admin": ADMIN, None: {}}[headers]
    answer = httpx.get(f"{url}{path}", headers=chosen, timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"]


@pytest.mark.parametrize("fmt", ["v2", "v3", "png", "charx", "yaml"])
def test_an_export_reads_back_as_the_same_character(
    site: tuple[str, dict[str, str]], fmt: str
) -> None:
    url, _ = site
    answer = httpx.get(
        f"{url}/api/characters/juniper-quill/export", params={"format": fmt}, headers=ADMIN
    )
    assert answer.status_code == 200, answer.text
    filename = answer.headers["content-disposition"].split('filename="')[1].rstrip('"')
    assert filename.startswith("juniper-quill.")
    suffix = "." + filename.rsplit(".", 1)[1]
    read = decode_character(answer.content, suffix=suffix, source=filename)
    assert read.name == "Juniper Quill"

    audit = httpx.get(
        f"{url}/api/admin/audit", params={"action": "character.export"}, headers=ADMIN
    ).json()
    assert any(e["target"] == "juniper-quill" and e["details"]["format"] == fmt for e in audit)


def test_a_picture_that_is_not_one_gives_the_placeholder() -> None:
    broken = card_png(v3_card())[:-40] + b"garbage"  # a PNG cut short
    character = Character(id="wren", name="Wren", persona="p", source_container="png")
    made = avatar(character, broken)
    assert made == avatar(character, None)  # the placeholder, not an error
    assert picture(made).format == "WEBP"


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    side = int(MAX_PIXELS**0.5) + 10
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, format="PNG")  # tiny file, huge picture
    with pytest.raises(ValueError, match="pixels"):
        thumbnail(buffer.getvalue())


def test_json_export_is_a_v3_card_by_default(site: tuple[str, dict[str, str]]) -> None:
    url, _ = site
    answer = httpx.get(f"{url}/api/characters/aria/export", headers=ADMIN, timeout=30)
    assert answer.status_code == 200
    assert json.loads(answer.content)["spec"] == "chara_card_v3"
