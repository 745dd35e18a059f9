"""Which variant a user is in: sticky, deterministic, and monotonic under ramping.

A user's bucket is a hash of (experiment id, user id) into ``BUCKETS``; the same on every
node and after every restart (BLAKE2b, not Python's salted ``hash``). The bucket space is
cut into one equal region per variant; a variant at p % takes the first p % of all buckets
*from its own region*, and control takes every bucket no variant took. So ramping a variant
up only moves control users into it, ramping it down only moves its users back to control,
and no user ever moves between two variants (tests/core/experiments)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from personae.core.experiments.spec import BUCKETS, CONTROL, Experiment


def bucket(experiment_id: str, user_id: str) -> int:
    digest = hashlib.blake2b(f"{experiment_id}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    variant: str
    forced: bool = False  # a tester chose it (traffic colouring), not the hash


def assign(
    experiment: Experiment, user_id: str, *, role: str = "user", forced: str | None = None
) -> Assignment:
    """The variant of ``user_id``. ``forced`` (a header, cookie, query parameter or WS field)
    wins when the caller's role may force and the variant exists; the kill switch wins over
    everything."""
    if experiment.killed:
        return Assignment(experiment.id, CONTROL)
    if forced is not None and role in experiment.force_roles and forced in experiment.names:
        return Assignment(experiment.id, forced, forced=True)
    return Assignment(experiment.id, variant_of_bucket(experiment, bucket(experiment.id, user_id)))


def variant_of_bucket(experiment: Experiment, number: int) -> str:
    region = BUCKETS // len(experiment.variants)
    index, offset = divmod(number, region)
    if index >= len(experiment.variants):  # the remainder past the last whole region
        return CONTROL
    variant = experiment.variants[index]
    taken = round(variant.percent * BUCKETS / 100)
    return variant.name if offset < taken else CONTROL
