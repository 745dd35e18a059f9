"""``skills:`` settings: validated when read, and applied to the runner and the reminders."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from personae.app.backends import build_skills, load_plugins
from personae.app.skills import skill_runner
from personae.settings import Settings


def test_defaults() -> None:
    skills = Settings().skills
    assert (skills.timeout_s, skills.max_concurrency) == (5.0, 8)
    assert skills.reminders.default_timezone == "UTC"
    assert skills.reminders.max_pending_per_user == 20


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"reminders": {"default_timezone": "Mars/Olympus"}}, "unknown time zone 'Mars/Olympus'"),
        ({"reminders": {"poll_interval_s": 0}}, "greater than 0"),
        ({"reminders": {"max_pending_per_user": 0}}, "greater than or equal to 1"),
        ({"reminders": {"every": "day"}}, "Extra inputs are not permitted"),
        ({"timeout_s": -1}, "greater than 0"),
    ],
)
def test_bad_values_are_refused_with_the_reason(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(skills=section)  # type: ignore[arg-type]


def test_the_runner_takes_its_limits_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, skills={"timeout_s": 0.25, "max_concurrency": 2})  # type: ignore[arg-type]
    stage = build_skills(load_plugins(), runner=skill_runner(settings))
    assert stage.runner.timeout_s == 0.25
    assert stage.runner._slots._value == 2
