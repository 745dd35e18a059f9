"""The experiments API on a live server: a gray release ramped and killed over HTTP with the
effect at the next turn, create/read/change/delete with bad input refused and nothing lost,
admins only, traffic colouring (header, cookie, query) only for a force role, feedback by the
conversation's user only and once per reply, the YAML folder, and ``personae release``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from personae.app import build_app
from personae.cli import cli
from personae.core.experiments.assignment import assign
from personae.core.experiments.spec import parse_experiment
from personae.core.types import Role
from personae.settings import Settings
from personae.testing import FakeChatModel
from tests.live_server import live_server

ADMIN_KEY = "sk-admin-experiments"
OLD_YAML = "id: aria\nname: Aria\npersona: PERSONA-OLD\ngreetings: [Hello.]\n"
NEW_YAML = "id: aria\nname: Aria\npersona: PERSONA-NEW\ngreetings: [Hello.]\n"
OLD_HASH = hashlib.sha256(OLD_YAML.encode()).hexdigest()
NEW_HASH = hashlib.sha256(NEW_YAML.encode()).hexdigest()


@dataclass
class Lab:
    url: str
    model: FakeChatModel
    settings: Settings
    keys: dict[str, str]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[who]}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def chat(self, user: str, who: str = "admin", **kwargs: Any) -> httpx.Response:
        body = {"model": "aria", "user": user, "messages": [{"role": "user", "content": "hi"}]}
        answer = self.call(who, "POST", "/v1/chat/completions", json=body, **kwargs)
        assert answer.status_code == 200, answer.text
        return answer

    def persona(self, user: str, who: str = "admin", **kwargs: Any) -> str:
        """Which version answered ``user``'s turn: OLD or NEW."""
        self.chat(user, who, **kwargs)
        system = " ".join(
            m.content for m in self.model.requests[-1].messages if m.role is Role.SYSTEM
        )
        return "NEW" if "PERSONA-NEW" in system else "OLD"

    def issue(self, name: str, role: str = "user") -> None:
        body = {"role": role, "subject": name}
        answer = self.call("admin", "POST", "/api/admin/keys", json=body)
        assert answer.status_code == 201, answer.text
        self.keys[name] = answer.json()["token"]

    def release(self, **body: Any) -> dict[str, Any]:
        answer = self.call(
            "admin", "POST", "/api/admin/experiments/release", json={"character": "aria", **body}
        )
        assert answer.status_code == 200, answer.text
        spec: dict[str, Any] = answer.json()["spec"]
        return spec

    def report(self, experiment: str = "release-aria") -> dict[str, dict[str, Any]]:
        answer = self.call("admin", "GET", f"/api/admin/experiments/{experiment}/report")
        assert answer.status_code == 200, answer.text
        return {row["variant"]: row for row in answer.json()["variants"]}


def lab_settings(tmp_path: Path, **overrides: Any) -> Settings:
    characters = tmp_path / "characters"
    if not characters.exists():
        characters.mkdir()
        (characters / "aria.yaml").write_text(OLD_YAML)
    return Settings(
        data_dir=tmp_path / "data",
        characters_dir=characters,
        api_keys=[ADMIN_KEY],  # type: ignore[list-item]
        watch_characters=False,
        routes={"retry": {"retries": 0}},  # type: ignore[arg-type]
        experiments={"dir": tmp_path / "experiments"},  # type: ignore[arg-type]
        **overrides,
    )


@contextmanager
def lab(tmp_path: Path, *, upload_new: bool = True, **overrides: Any) -> Iterator[Lab]:
    """A live server serving aria; with ``upload_new``, the new version was just uploaded
    (current), the old one kept: the moment a gray release starts from."""
    settings = lab_settings(tmp_path, **overrides)
    model = FakeChatModel()
    with live_server(build_app(settings, backends={"fake": model})) as url:
        running = Lab(url, model, settings, {"admin": ADMIN_KEY})
        if upload_new:
            files = {"file": ("aria.yaml", NEW_YAML.encode(), "application/yaml")}
            answer = running.call("admin", "POST", "/api/characters?force=true", files=files)
            assert answer.status_code == 201, answer.text
            assert answer.json()["version_hash"] == NEW_HASH
        yield running


USERS = [f"user-{i}" for i in range(30)]


def test_a_release_ramps_and_rolls_back_at_the_next_turn(tmp_path: Path) -> None:
    with lab(tmp_path) as d:
        spec = d.release(version=NEW_HASH[:8], percent=50)
        assert spec["control"] == {"character_version": OLD_HASH}  # the one just replaced
        assert spec["variants"][0]["character_version"] == NEW_HASH
        experiment = parse_experiment(spec)
        for user in USERS:  # each user gets the version of its sticky variant
            expected = "NEW" if assign(experiment, user).variant == "new" else "OLD"
            assert d.persona(user) == expected
        assert {d.persona(u) for u in USERS} == {"OLD", "NEW"}

        d.release(percent=100)
        assert {d.persona(u) for u in USERS} == {"NEW"}
        d.release(killed=True)  # the kill switch: everyone back on the old version
        assert {d.persona(u) for u in USERS} == {"OLD"}
        d.release(killed=False, percent=0)
        assert {d.persona(u) for u in USERS} == {"OLD"}

        report = d.report()
        assert set(report) == {"control", "new"}
        assert report["control"]["turns"] + report["new"]["turns"] == 5 * len(USERS)


def test_crud_with_bad_input_refused_and_nothing_lost(tmp_path: Path) -> None:
    spec = {"id": "tone", "variants": [{"name": "brief", "percent": 20, "instructions": "Brief."}]}
    with lab(tmp_path, upload_new=False) as d:
        d.issue("alice")
        base = "/api/admin/experiments"
        for bad in (
            {"id": "tone", "variants": []},
            {"id": "tone", "variants": [{"name": "control", "percent": 5}]},
            {"id": "tone", "variants": [{"name": "a", "percent": 5, "generation": {"top_k": 3}}]},
            {"variants": [{"name": "a", "percent": 5}]},
        ):
            answer = d.call("admin", "POST", base, json=bad)
            assert answer.status_code == 400, (bad, answer.text)
            assert answer.json()["error"]["message"]
        assert d.call("admin", "GET", base).json() == []

        created = d.call("admin", "POST", base, json=spec)
        assert created.status_code == 201, created.text
        assert created.json()["source"] == "api"
        assert d.call("admin", "POST", base, json=spec).status_code == 409

        for change in (
            {"variants": {"nope": {"percent": 5}}},
            {"variants": {"brief": {"percent": 101}}},
            {"killed": "yes"},
            {"id": "other"},
        ):
            answer = d.call("admin", "PATCH", f"{base}/tone", json=change)
            assert answer.status_code == 400, (change, answer.text)
        kept = d.call("admin", "GET", f"{base}/tone").json()["spec"]
        assert kept["variants"][0]["percent"] == 20
        assert kept["killed"] is False

        ramped = d.call(
            "admin", "PATCH", f"{base}/tone", json={"variants": {"brief": {"percent": 35}}}
        )
        assert ramped.status_code == 200, ramped.text
        assert ramped.json()["spec"]["variants"][0]["percent"] == 35

        for method, path in (
            ("GET", base),
            ("POST", base),
            ("GET", f"{base}/tone"),
            ("PATCH", f"{base}/tone"),
            ("DELETE", f"{base}/tone"),
            ("GET", f"{base}/tone/report"),
        ):
            assert d.call("alice", method, path, json={}).status_code == 403, (method, path)

        assert d.call("admin", "DELETE", f"{base}/tone").status_code == 204
        assert d.call("admin", "GET", f"{base}/tone").status_code == 404
        assert d.call("admin", "DELETE", f"{base}/tone").status_code == 404
        actions = [
            r["action"]
            for r in d.call("admin", "GET", "/api/admin/audit").json()
            if r["action"].startswith("experiment.")
        ]
        assert actions == ["experiment.create", "experiment.change", "experiment.delete"]


def test_colouring_forces_a_variant_only_for_a_force_role(tmp_path: Path) -> None:
    with lab(tmp_path) as d:
        d.issue("tester")
        spec = d.release(version=NEW_HASH, percent=0)
        assert spec["force_roles"] == ["admin"]
        assert d.persona("tester", "tester", headers={"X-Personae-Variant": "new"}) == "OLD"
        assert d.persona("someone", headers={"X-Personae-Variant": "new"}) == "NEW"
        assert d.persona("someone", cookies={"personae_variant": "new"}) == "NEW"
        assert d.persona("someone", params={"variant": "new"}) == "NEW"
        assert d.persona("someone", params={"variant": "no-such"}) == "OLD"  # ignored
        assert d.persona("someone") == "OLD"
        forced = d.report()["new"]
        assert (forced["turns"], forced["users"]) == (3, 1)


def test_feedback_by_the_conversation_s_user_once_per_reply(tmp_path: Path) -> None:
    with lab(tmp_path) as d:
        d.issue("alice")
        d.issue("bob")
        d.release(version=NEW_HASH, percent=100)
        conversation = d.chat("alice", "alice").headers["X-Personae-Conversation"]
        messages = d.call("alice", "GET", f"/api/conversations/{conversation}/messages").json()
        rows = messages["messages"] if isinstance(messages, dict) else messages
        reply = next(m for m in reversed(rows) if m["role"] == "assistant")
        asked = next(m for m in rows if m["role"] == "user")

        path = f"/api/messages/{reply['id']}/feedback"
        for _ in range(2):  # idempotent
            answer = d.call("alice", "POST", path, json={"value": "up"})
            assert answer.status_code == 200, answer.text
        assert d.call("bob", "POST", path, json={"value": "down"}).status_code == 403
        assert d.call("alice", "POST", path, json={"value": "meh"}).status_code == 400
        missing = d.call("alice", "POST", "/api/messages/msg_nope/feedback", json={"value": "up"})
        assert missing.status_code == 404
        not_a_reply = f"/api/messages/{asked['id']}/feedback"
        assert d.call("alice", "POST", not_a_reply, json={"value": "up"}).status_code == 404
        row = d.report()["new"]
        assert (row["feedback_given"], row["thumbs_up"]["rate"]) == (1, 1.0)

        d.call("alice", "POST", path, json={"value": "down"}).raise_for_status()  # replaced
        row = d.report()["new"]
        assert (row["feedback_given"], row["thumbs_up"]["rate"]) == (1, 0.0)
        metrics = d.call("admin", "GET", "/metrics").text
        # The counter counts each rating given, a replaced one included.
        for value, count in (("up", 2), ("down", 1)):
            series = f'experiment="release-aria",value="{value}",variant="new"'
            assert f"personae_experiment_feedback_total{{{series}}} {count}.0" in metrics
        turns = 'experiment="release-aria",outcome="ok",variant="new"'
        assert f"personae_experiment_turns_total{{{turns}}} 1.0" in metrics


def test_the_yaml_folder_is_read_at_start_and_a_ramp_survives_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "tone.yaml").write_text(
        "id: tone\nvariants:\n  - name: brief\n    percent: 10\n    instructions: Be brief.\n"
    )
    (folder / "broken.yaml").write_text("id: broken\nvariants: nope\n")
    with lab(tmp_path, upload_new=False) as d:
        listed = d.call("admin", "GET", "/api/admin/experiments").json()
        assert [e["id"] for e in listed] == ["tone"]  # the broken file skipped, not fatal
        assert listed[0]["source"].endswith("tone.yaml")
        d.call(
            "admin",
            "PATCH",
            "/api/admin/experiments/tone",
            json={"variants": {"brief": {"percent": 40}}},
        ).raise_for_status()
    with lab(tmp_path, upload_new=False) as d:  # the same file: the ramp made over the API holds
        spec = d.call("admin", "GET", "/api/admin/experiments/tone").json()["spec"]
        assert spec["variants"][0]["percent"] == 40
    (folder / "tone.yaml").write_text(
        "id: tone\nvariants:\n  - name: brief\n    percent: 5\n    instructions: Be brief.\n"
    )
    with lab(tmp_path, upload_new=False) as d:  # the file changed: it wins
        spec = d.call("admin", "GET", "/api/admin/experiments/tone").json()["spec"]
        assert spec["variants"][0]["percent"] == 5


def test_personae_release_through_the_api_and_into_the_store(tmp_path: Path) -> None:
    runner = CliRunner()
    with lab(tmp_path) as d:
        ran = runner.invoke(
            cli,
            ["release", "aria", "--version", NEW_HASH[:10], "--percent", "10", "--url", d.url],
            env={"PERSONAE_API_KEY": ADMIN_KEY},
        )
        assert ran.exit_code == 0, ran.output
        assert '"percent": 10.0' in ran.output
        assert d.release()["control"] == {"character_version": OLD_HASH}
        ran = runner.invoke(
            cli, ["release", "aria", "--kill", "--url", d.url], env={"PERSONAE_API_KEY": ADMIN_KEY}
        )
        assert ran.exit_code == 0, ran.output
        assert {d.persona(u) for u in USERS[:10]} == {"OLD"}
        refused = runner.invoke(cli, ["release", "aria", "--percent", "10", "--url", d.url])
        assert refused.exit_code == 1  # no key: the API says so
        assert "401" in refused.output

    # No server: the store directly; the folder's catalog knows only the file's version.
    env = {
        "PERSONAE_DATA_DIR": str(tmp_path / "data"),
        "PERSONAE_CHARACTERS_DIR": str(tmp_path / "characters"),
    }
    ran = runner.invoke(cli, ["release", "bram", "--version", "abcdef12"], env=env)
    assert ran.exit_code == 1
    assert "unknown character 'bram'" in ran.output
    ran = runner.invoke(cli, ["release", "aria", "--percent", "25"], env=env)
    assert ran.exit_code == 0, ran.output
    assert '"percent": 25.0' in ran.output
    assert '"killed": true' in ran.output  # the kill switch set over the API stays


@pytest.mark.parametrize("value", [0, 2, "up"])
def test_feedback_values_other_than_up_or_down_are_refused(tmp_path: Path, value: object) -> None:
    with lab(tmp_path, upload_new=False) as d:
        answer = d.call("admin", "POST", "/api/messages/m/feedback", json={"value": value})
        assert answer.status_code == (404 if value == "up" else 400), answer.text
