"""Plugins: built-ins and third parties register through the same hooks; third parties are
found through the ``personae`` entry-point group of an installed distribution."""

from __future__ import annotations

from pathlib import Path

import pytest

from personae.app import BUILTIN_PLUGINS, build_backends
from personae.core.types import ChatMessage, ChatRequest, Role
from personae.errors import ConfigurationError
from personae.plugins.manager import chat_model_factories, make_plugin_manager
from personae.plugins.specs import hookimpl
from personae.settings import Settings

ECHO_PLUGIN = """
from personae.sdk import ChatModel, ModelChunk, Usage, hookimpl


class EchoModel(ChatModel):
    def __init__(self, name):
        self.name = name

    async def stream(self, request):
        text = request.messages[-1].content
        yield ModelChunk(text=text)
        yield ModelChunk(finish_reason="stop", usage=Usage(1, 1))


@hookimpl
def register_chat_models(register):
    register("echo", lambda config: EchoModel(config.name))
"""


@pytest.fixture
def installed_echo_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real installed distribution (a dist-info folder on sys.path) whose entry point in the
    ``personae`` group names a plugin module."""
    (tmp_path / "personae_echo.py").write_text(ECHO_PLUGIN)
    info = tmp_path / "personae_echo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: personae-echo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[personae]\necho = personae_echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_builtins_register_their_kinds_through_the_hooks() -> None:
    factories = chat_model_factories(make_plugin_manager(BUILTIN_PLUGINS, load_entry_points=False))
    assert {"openai", "llamacpp"} <= set(factories)


def test_an_entry_point_plugin_is_discovered_and_used(installed_echo_plugin: None) -> None:
    factories = chat_model_factories(make_plugin_manager(BUILTIN_PLUGINS))
    assert "echo" in factories


async def test_settings_can_name_a_plugin_kind(installed_echo_plugin: None, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, llm={"kind": "echo"})  # type: ignore[arg-type]
    backends = await build_backends(settings)
    assert list(backends) == ["echo"]
    model = backends["echo"]
    request = ChatRequest(messages=(ChatMessage(Role.USER, "ping"),))
    assert [c.text async for c in model.stream(request)] == ["ping", ""]


async def test_an_unknown_kind_is_a_clear_configuration_error(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, llm={"kind": "nope"})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"unknown backend kind 'nope'; known: .*openai"):
        await build_backends(settings)


def test_a_kind_registered_twice_is_refused() -> None:

    class Shadow:
        @hookimpl
        def register_chat_models(self, register):  # type: ignore[no-untyped-def]
            register("openai", lambda config: None)

    manager = make_plugin_manager([*BUILTIN_PLUGINS, Shadow()], load_entry_points=False)
    with pytest.raises(ConfigurationError, match="'openai' is registered twice"):
        chat_model_factories(manager)
