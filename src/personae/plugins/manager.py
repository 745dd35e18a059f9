"""The plugin manager: built-ins first, then entry points of the ``personae`` group."""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType

import pluggy

from personae.core.skills import Skill, check_name
from personae.errors import ConfigurationError
from personae.plugins.specs import PROJECT, ChatModelFactory, PersonaeSpecs


def make_plugin_manager(
    builtins: Iterable[ModuleType | object] = (), *, load_entry_points: bool = True
) -> pluggy.PluginManager:
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(PersonaeSpecs)
    for plugin in builtins:
        manager.register(plugin)
    if load_entry_points:
        manager.load_setuptools_entrypoints(PROJECT)
    return manager


def chat_model_factories(manager: pluggy.PluginManager) -> dict[str, ChatModelFactory]:
    """Every registered chat-model kind. A kind registered twice is a configuration error:
    silently letting one plugin shadow another would make the served model depend on load
    order."""
    factories: dict[str, ChatModelFactory] = {}

    def register(kind: str, factory: ChatModelFactory) -> None:
        if kind in factories:
            raise ConfigurationError(f"chat model kind {kind!r} is registered twice", kind=kind)
        factories[kind] = factory

    manager.hook.register_chat_models(register=register)
    return factories


def skill_registry(manager: pluggy.PluginManager) -> dict[str, Skill]:
    """Every registered skill by name. A name registered twice is a configuration error, as a
    chat-model kind is."""
    skills: dict[str, Skill] = {}

    def register(skill: Skill) -> None:
        raw = getattr(skill, "name", None)
        try:
            name = check_name(raw if isinstance(raw, str) else "")
        except ValueError as exc:
            raise ConfigurationError(f"a skill has a bad name: {exc}", skill=repr(skill)) from exc
        if name in skills:
            raise ConfigurationError(f"skill {name!r} is registered twice", skill=name)
        skills[name] = skill

    manager.hook.register_skills(register=register)
    return skills
