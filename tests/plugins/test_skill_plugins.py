"""Acceptance (issue 6, point 4): a third-party skill installed as an entry point in a test
package is discovered and used in a conversation; built-ins register through the same hook."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from personae.app import BUILTIN_PLUGINS, build_app
from personae.errors import ConfigurationError
from personae.plugins.manager import make_plugin_manager, skill_registry
from personae.plugins.specs import hookimpl
from personae.settings import Settings
from personae.skills.dice import DiceSkill
from personae.testing import FakeChatModel
from tests.live_server import live_server

SHOUT_PLUGIN = """
from personae.sdk import Keywords, Skill, SkillResult, SlashCommand, hookimpl


class Shout(Skill):
    name = "shout"
    version = "0.1"
    description = "Say it louder."
    parameters = {
        "type": "object",
        "properties": {"text": {"type": "string", "minLength": 1}},
        "required": ["text"],
    }
    triggers = (SlashCommand("shout"), Keywords(("louder",)))

    async def run(self, context, args):
        loud = args["text"].upper() + "!"
        return SkillResult(text=loud, data={"shouted": loud})


@hookimpl
def register_skills(register):
    register(Shout())
"""

CRIER = """
id: crier
name: Crier
persona: The town crier.
skills: [shout, dice]
"""


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def installed_shout_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "personae_shout.py").write_text(SHOUT_PLUGIN)
    info = site / "personae_shout-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: personae-shout\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[personae]\nshout = personae_shout\n")
    monkeypatch.syspath_prepend(str(site))


def test_builtin_skills_register_through_the_hook() -> None:
    skills = skill_registry(make_plugin_manager(BUILTIN_PLUGINS, load_entry_points=False))
    assert {"dice", "time"} <= set(skills)


def test_an_entry_point_skill_is_discovered(installed_shout_plugin: None) -> None:
    skills = skill_registry(make_plugin_manager(BUILTIN_PLUGINS))
    assert skills["shout"].version == "0.1"


def test_an_entry_point_skill_is_used_in_a_conversation(
    installed_shout_plugin: None, tmp_path: Path
) -> None:
    characters = tmp_path / "characters"
    characters.mkdir()
    (characters / "crier.yaml").write_text(CRIER)
    settings = Settings(data_dir=tmp_path / "data", characters_dir=characters)
    model = FakeChatModel()
    model.enqueue("HEAR YE!")
    with live_server(build_app(settings, backends={"fake": model})) as url:
        c = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        with c:
            first = c.chat.completions.create(model="crier", user="sam", messages=ask("/shout hi"))
            second = c.chat.completions.create(model="crier", user="sam", messages=ask("louder"))
    assert first.choices[0].message.content == "HI!"
    assert second.choices[0].message.content == "HEAR YE!"  # the model's, informed by the skill
    (request,) = model.requests
    assert request.messages[-2].content == '[skill shout result: {"shouted": "LOUDER!"}]'


def test_a_skill_registered_twice_is_refused() -> None:
    class Shadow:
        @hookimpl
        def register_skills(self, register):  # type: ignore[no-untyped-def]
            register(DiceSkill())

    manager = make_plugin_manager([*BUILTIN_PLUGINS, Shadow()], load_entry_points=False)
    with pytest.raises(ConfigurationError, match="skill 'dice' is registered twice"):
        skill_registry(manager)
