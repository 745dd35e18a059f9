"""Which chain of backends serves a turn: ordered rules, first match wins, else the character's
backend hint, else the default chain. Pure selection over names; what a chain *is* (retries,
fallbacks, circuit breakers) is built outside the core and handed in as ``chain``.

    routes = ModelRoutes(backends, default=("gpt", "local"), rules=[
        RouteRule(chain=("coder", "gpt"), kinds=frozenset({"code"})),
        RouteRule(chain=("long", "gpt"), min_prompt_tokens=8000),
    ], chain=pool.chain)
    model = routes.for_character(character, kind="code")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from personae.core.characters import Character
from personae.core.ports import ChatModel
from personae.errors import ConfigurationError

#: Builds the model that serves a chain of backend names (primary first, then fallbacks).
ChainBuilder = Callable[[tuple[str, ...]], ChatModel]


@dataclass(frozen=True, slots=True)
class RouteRule:
    """A rule matches when every condition it names holds; a rule naming none matches all.

    ``characters``, ``kinds`` and ``variants`` are sets of accepted values (empty: any);
    ``min_prompt_tokens`` matches turns whose prompt needs at least that many tokens.
    """

    chain: tuple[str, ...]
    name: str = ""
    characters: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()  # message kind or intent label, e.g. "code"
    min_prompt_tokens: int | None = None
    variants: frozenset[str] = frozenset()  # experiment variant (experiments issue)

    def matches(
        self,
        character_id: str,
        *,
        prompt_tokens: int | None = None,
        kind: str | None = None,
        variant: str | None = None,
    ) -> bool:
        # A condition on something the caller did not say cannot hold.
        if self.characters and character_id not in self.characters:
            return False
        if self.kinds and kind not in self.kinds:
            return False
        if self.variants and variant not in self.variants:
            return False
        return self.min_prompt_tokens is None or (
            prompt_tokens is not None and prompt_tokens >= self.min_prompt_tokens
        )


@dataclass(frozen=True, slots=True)
class Route:
    """The outcome of selection: which rule decided (``default`` or ``character:<id>`` when no
    rule did) and the chain of backend names it names."""

    name: str
    chain: tuple[str, ...]


class ModelRoutes:
    """Selects the model for a turn. ``backends`` names what chains may contain. Without a
    ``chain`` builder every chain must be a single backend, served by that backend itself."""

    def __init__(
        self,
        backends: Mapping[str, ChatModel],
        *,
        default: str | Sequence[str],
        rules: Sequence[RouteRule] = (),
        chain: ChainBuilder | None = None,
    ) -> None:
        self._known = frozenset(backends)
        self._chaining = chain is not None
        self._default = Route("default", self._check("default", _as_chain(default)))
        self._rules = tuple(
            RouteRule(
                chain=self._check(rule.name or f"rule {index + 1}", rule.chain),
                name=rule.name or f"rule {index + 1}",
                characters=rule.characters,
                kinds=rule.kinds,
                min_prompt_tokens=rule.min_prompt_tokens,
                variants=rule.variants,
            )
            for index, rule in enumerate(rules)
        )

        def build(names: tuple[str, ...]) -> ChatModel:
            if chain is not None:
                return chain(names)
            if len(names) > 1:
                raise ConfigurationError(f"the chain {list(names)} needs a chain builder")
            return backends[names[0]]

        self._build = build
        # Every chain is built once, up front: selection at turn time is a lookup.
        chains = [self._default.chain, *(rule.chain for rule in self._rules)]
        chains += [self._hinted(name) for name in sorted(self._known)]
        self._models: dict[tuple[str, ...], ChatModel] = {}
        for names in chains:
            if names not in self._models:
                self._models[names] = build(names)

    def select(
        self,
        character: Character,
        *,
        prompt_tokens: int | None = None,
        kind: str | None = None,
        variant: str | None = None,
    ) -> Route:
        for rule in self._rules:
            if rule.matches(character.id, prompt_tokens=prompt_tokens, kind=kind, variant=variant):
                return Route(rule.name, rule.chain)
        if character.model in self._known:
            # The character's hint picks the primary; the default chain still backs it up.
            return Route(f"character:{character.id}", self._hinted(character.model))
        return self._default

    def for_character(
        self,
        character: Character,
        *,
        prompt_tokens: int | None = None,
        kind: str | None = None,
        variant: str | None = None,
    ) -> ChatModel:
        route = self.select(character, prompt_tokens=prompt_tokens, kind=kind, variant=variant)
        return self._models[route.chain]

    def for_chain(self, names: Sequence[str]) -> ChatModel:
        """The model serving an explicit chain (an experiment's or a replay's route), built the
        first time it is asked for and kept: its breakers are the same on every turn."""
        chain = tuple(names)
        model = self._models.get(chain)
        if model is None:
            model = self._models[chain] = self._build(self._check("override", chain))
        return model

    @property
    def default(self) -> ChatModel:
        return self._models[self._default.chain]

    @property
    def rules(self) -> tuple[RouteRule, ...]:
        return self._rules

    @property
    def sizes_prompts(self) -> bool:
        """Some rule routes by the prompt's size: a turn must estimate it to be routed."""
        return any(rule.min_prompt_tokens is not None for rule in self._rules)

    def all(self) -> list[ChatModel]:
        """Every model a turn can be routed to, each once."""
        return list(self._models.values())

    def _hinted(self, name: str | None) -> tuple[str, ...]:
        assert name is not None
        if not self._chaining:  # without chains a hint names the one backend that serves
            return (name,)
        return (name, *(other for other in self._default.chain if other != name))

    def _check(self, where: str, chain: Iterable[str]) -> tuple[str, ...]:
        names = tuple(chain)
        if not names:
            raise ConfigurationError(f"route {where!r} names no backend")
        unknown = [name for name in names if name not in self._known]
        if unknown:
            known = ", ".join(sorted(self._known)) or "none"
            raise ConfigurationError(
                f"route {where!r} names unknown backend(s) {', '.join(unknown)}; known: {known}",
                route=where,
            )
        if len(set(names)) != len(names):
            raise ConfigurationError(f"route {where!r} names a backend twice", route=where)
        return names


def _as_chain(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
