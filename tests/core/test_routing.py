"""ModelRoutes: pure selection of a chain of backends by ordered rules."""

from __future__ import annotations

import pytest

from personae.core.characters import Character
from personae.core.ports import ChatModel
from personae.core.routing import ModelRoutes, Route, RouteRule
from personae.errors import ConfigurationError
from personae.testing import FakeChatModel

ARIA = Character(id="aria", name="Aria")
BRAM = Character(id="bram", name="Bram")
CODER = Character(id="coder", name="Coder", model="code")
NAMES = ("gpt", "local", "code", "long")


class Chain(FakeChatModel):
    """What the chain builder returns in these tests: a model that remembers its chain."""

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__(name=">".join(names))
        self.names = names


@pytest.fixture
def backends() -> dict[str, ChatModel]:
    return {name: FakeChatModel(name=name) for name in NAMES}


def routes(backends: dict[str, ChatModel], *rules: RouteRule, **kwargs: object) -> ModelRoutes:
    built: list[tuple[str, ...]] = []

    def chain(names: tuple[str, ...]) -> ChatModel:
        built.append(names)
        return Chain(names)

    result = ModelRoutes(
        backends,
        default=kwargs.pop("default", ("gpt", "local")),  # type: ignore[arg-type]
        rules=rules,
        chain=chain,
    )
    assert len(built) == len(set(built)), "every distinct chain is built once"
    return result


def chain_of(model: ChatModel) -> tuple[str, ...]:
    assert isinstance(model, Chain)
    return model.names


def test_without_rules_the_default_chain_serves(backends: dict[str, ChatModel]) -> None:
    table = routes(backends)
    assert chain_of(table.for_character(ARIA)) == ("gpt", "local")
    assert table.select(ARIA) == Route("default", ("gpt", "local"))
    assert table.for_character(ARIA) is table.default


def test_rules_match_by_character_kind_context_and_variant(
    backends: dict[str, ChatModel],
) -> None:
    table = routes(
        backends,
        RouteRule(chain=("local",), name="bram-local", characters=frozenset({"bram"})),
        RouteRule(chain=("code", "gpt"), name="code", kinds=frozenset({"code"})),
        RouteRule(chain=("long", "gpt"), name="long", min_prompt_tokens=8000),
        RouteRule(chain=("local", "gpt"), name="exp-b", variants=frozenset({"b"})),
    )
    assert table.select(BRAM).name == "bram-local"
    assert chain_of(table.for_character(ARIA, kind="code")) == ("code", "gpt")
    assert table.select(ARIA, prompt_tokens=8000).name == "long"
    assert table.select(ARIA, prompt_tokens=7999).name == "default"
    assert table.select(ARIA, variant="b").name == "exp-b"
    assert table.select(ARIA, variant="a").name == "default"
    # A condition on something the caller did not say does not hold.
    assert table.select(ARIA).name == "default"


def test_the_first_matching_rule_wins(backends: dict[str, ChatModel]) -> None:
    table = routes(
        backends,
        RouteRule(chain=("code",), kinds=frozenset({"code"}), characters=frozenset({"aria"})),
        RouteRule(chain=("local",), kinds=frozenset({"code"})),
    )
    assert table.select(ARIA, kind="code") == Route("rule 1", ("code",))
    assert table.select(BRAM, kind="code") == Route("rule 2", ("local",))
    assert table.select(ARIA, kind="chat").name == "default"


def test_a_rule_without_conditions_matches_everything(backends: dict[str, ChatModel]) -> None:
    table = routes(backends, RouteRule(chain=("local",), name="all"))
    assert table.select(ARIA).name == table.select(BRAM, kind="code").name == "all"


def test_a_character_hint_picks_the_primary_and_keeps_the_default_fallbacks(
    backends: dict[str, ChatModel],
) -> None:
    table = routes(backends)
    assert table.select(CODER) == Route("character:coder", ("code", "gpt", "local"))
    hinted_default = Character(id="x", name="X", model="local")
    assert table.select(hinted_default).chain == ("local", "gpt")
    unknown_hint = Character(id="y", name="Y", model="nowhere")
    assert table.select(unknown_hint).name == "default"


def test_rules_beat_a_character_hint(backends: dict[str, ChatModel]) -> None:
    table = routes(backends, RouteRule(chain=("long",), characters=frozenset({"coder"})))
    assert table.select(CODER).chain == ("long",)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            RouteRule(chain=("gpt", "nope"), name="bad"),
            r"route 'bad' names unknown backend\(s\) nope",
        ),
        (RouteRule(chain=()), r"route 'rule 1' names no backend"),
        (RouteRule(chain=("gpt", "gpt")), r"names a backend twice"),
    ],
)
def test_chains_are_checked_up_front(
    backends: dict[str, ChatModel], rule: RouteRule, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        routes(backends, rule)


def test_an_unknown_default_is_a_configuration_error(backends: dict[str, ChatModel]) -> None:
    with pytest.raises(
        ConfigurationError, match=r"route 'default' .* known: code, gpt, local, long"
    ):
        routes(backends, default=("missing",))


def test_without_a_chain_builder_single_backends_serve_themselves() -> None:
    fake, other = FakeChatModel(name="fake"), FakeChatModel(name="other")
    table = ModelRoutes({"fake": fake, "other": other}, default="fake")
    assert table.for_character(ARIA) is fake
    assert table.for_character(Character(id="z", name="Z", model="other")) is other
    assert table.default is fake
    assert set(map(id, table.all())) == {id(fake), id(other)}
    with pytest.raises(ConfigurationError, match="needs a chain builder"):
        ModelRoutes({"fake": fake, "other": other}, default=("fake", "other"))


def test_all_lists_each_routable_model_once(backends: dict[str, ChatModel]) -> None:
    table = routes(backends, RouteRule(chain=("gpt", "local"), kinds=frozenset({"x"})))
    chains = sorted(chain_of(model) for model in table.all())
    # The default (also named by the rule) and one hinted chain per backend.
    assert chains == [
        ("code", "gpt", "local"),
        ("gpt", "local"),
        ("local", "gpt"),
        ("long", "gpt", "local"),
    ]
