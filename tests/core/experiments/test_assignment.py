"""Sticky, deterministic, monotonic assignment of users to variants."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personae.core.experiments.assignment import assign, bucket
from personae.core.experiments.spec import CONTROL, Experiment, Variant, parse_experiment
from personae.core.types import SamplingOverrides
from personae.errors import InvalidInput

USERS = [f"user-{i}" for i in range(100_000)]


def experiment(*percents: float, killed: bool = False) -> Experiment:
    variants = tuple(Variant(f"v{i + 1}", p) for i, p in enumerate(percents))
    return Experiment("exp-1", variants, killed=killed)


def test_users_split_by_the_weights_within_statistical_bounds() -> None:
    counts = Counter(assign(experiment(10, 30), user).variant for user in USERS)
    n = len(USERS)
    for name, share in {"v1": 0.10, "v2": 0.30, CONTROL: 0.60}.items():
        # Five standard deviations of a binomial count: fails by chance once in ~3.5 million.
        sigma = (n * share * (1 - share)) ** 0.5
        assert abs(counts[name] - n * share) < 5 * sigma, (name, counts)


def test_assignment_is_the_same_in_another_process() -> None:
    """Another node, or the same one after a restart: nothing depends on process state
    (Python's own ``hash`` of a string changes with every process)."""
    users = USERS[:200]
    here = [bucket("exp-1", u) for u in users]
    code = (
        "from personae.core.experiments.assignment import bucket\n"
        f"print([bucket('exp-1', u) for u in {users!r}])"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert there.strip() == str(here)


@settings(max_examples=60, deadline=None)
@given(
    before=st.lists(st.integers(0, 50), min_size=2, max_size=2),
    after=st.lists(st.integers(0, 50), min_size=2, max_size=2),
)
def test_ramping_never_moves_a_user_between_two_variants(
    before: list[int], after: list[int]
) -> None:
    old, new = experiment(*before), experiment(*after)
    for user in USERS[:3000]:
        was, now = assign(old, user).variant, assign(new, user).variant
        if was != now:
            assert CONTROL in {was, now}, (user, was, now)
        if was != CONTROL and before[int(was[1:]) - 1] <= after[int(was[1:]) - 1]:
            assert now == was  # a variant ramped up (or kept) keeps every user it had


def test_the_kill_switch_sends_everyone_to_control() -> None:
    killed = experiment(50, killed=True)
    assert {assign(killed, user).variant for user in USERS[:5000]} == {CONTROL}
    assert assign(killed, "tester", role="admin", forced="v1").variant == CONTROL


def test_testers_may_force_a_variant_and_users_may_not() -> None:
    exp = experiment(0)  # the variant has no traffic of its own yet
    assert assign(exp, "qa", role="admin", forced="v1").variant == "v1"
    assert assign(exp, "qa", role="admin", forced="v1").forced
    assert assign(exp, "someone", role="user", forced="v1").variant == CONTROL
    assert assign(exp, "qa", role="admin", forced="nope").variant == CONTROL


def test_a_full_ramp_takes_everyone() -> None:
    assert {assign(experiment(100), user).variant for user in USERS[:5000]} == {"v1"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"variants": [{"name": "b", "percent": 5}]}, "id must be"),
        ({"id": "x", "variants": []}, "non-empty list"),
        ({"id": "x", "variants": [{"name": "control", "percent": 5}]}, "unique and not"),
        ({"id": "x", "variants": [{"name": "b"}, {"name": "b"}]}, "unique and not"),
        ({"id": "x", "variants": [{"name": "b", "percent": -1}]}, "from 0"),
        ({"id": "x", "variants": [{"name": "b", "percent": 0.001}]}, "two decimals"),
        ({"id": "x", "variants": [{"name": "b", "percent": 60}, {"name": "c"}]}, "at most 50"),
        ({"id": "x", "variants": [{"name": "b", "route": "fast"}]}, "list of backend names"),
        ({"id": "x", "variants": [{"name": "b"}], "targeting": ["aria"]}, "targeting must"),
    ],
)
def test_bad_experiments_are_refused_with_the_field_named(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_experiment(data)


def test_an_experiment_from_yaml_shape() -> None:
    exp = parse_experiment(
        {
            "id": "aria-v2",
            "targeting": {"characters": ["aria"], "channels": ["ws", "http"]},
            "variants": [
                {
                    "name": "v2",
                    "percent": 12.5,
                    "character_version": "ab12",
                    "route": ["fast", "local"],
                    "generation": {"temperature": 0.4},
                }
            ],
        }
    )
    v2 = exp.variant("v2")
    assert v2 is not None
    assert (v2.percent, v2.overrides.route, v2.overrides.generation) == (
        12.5,
        ("fast", "local"),
        SamplingOverrides(temperature=0.4),
    )
    assert exp.targeting.matches(character="aria", role="user", channel="ws")
    assert not exp.targeting.matches(character="kit", role="user", channel="ws")
    assert not exp.targeting.matches(character="aria", role="user", channel="telegram")


@pytest.mark.parametrize(
    ("variant", "problem"),
    [
        ({"generation": {"temperature": 9}}, "generation: temperature"),
        ({"generation": {"top_k": 3}}, "generation: top_k"),
        ({"memory": {"enabled": "yes"}}, "memory.enabled must be true or false"),
        ({"memory": {"budget_tokens": 3}}, "unknown setting(s) budget_tokens"),
    ],
)
def test_a_variant_s_overrides_are_checked_when_parsed(
    variant: dict[str, object], problem: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(problem)):
        parse_experiment({"id": "e", "variants": [{"name": "v", "percent": 5, **variant}]})
