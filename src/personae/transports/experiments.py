"""The experiments API: ``/api/admin/experiments`` (admins: create, list, read, change, ramp,
kill, delete, release, report) and ``POST /api/messages/{id}/feedback`` (the conversation's
user: thumbs up or down). Admin changes are audited. docs/experiments.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, Field

from personae.core.experiments.admin import ExperimentAdmin, ExperimentReport
from personae.core.experiments.report import Interval
from personae.core.experiments.spec import experiment_data
from personae.core.experiments.store import StoredExperiment
from personae.core.types import Caller
from personae.transports.admin import audit_entry
from personae.transports.auth import admin_caller, caller
from personae.transports.gateway import Gateway, NotReady, gateway

router = APIRouter(tags=["experiments"])

# Traffic colouring (docs/experiments.md): a tester asks for a variant; honoured only for a
# role in the experiment's force_roles, ignored (not an error) for anyone else.
VARIANT_HEADER = "X-Personae-Variant"
VARIANT_COOKIE = "personae_variant"
VARIANT_QUERY = "variant"
TAGS_HEADER = "X-Personae-Tags"  # comma-separated tags the caller declares, for targeting
MAX_NAME = 64
MAX_TAGS = 16


def variant_asked(request: Request) -> str | None:
    """The variant an HTTP request asks for: header, then cookie, then query parameter."""
    asked = (
        request.headers.get(VARIANT_HEADER)
        or request.cookies.get(VARIANT_COOKIE)
        or request.query_params.get(VARIANT_QUERY)
    )
    asked = (asked or "").strip()
    return asked[:MAX_NAME] or None


def tags_declared(request: Request) -> tuple[str, ...]:
    return split_tags(request.headers.get(TAGS_HEADER, ""))


def split_tags(text: str) -> tuple[str, ...]:
    tags = (t.strip()[:MAX_NAME] for t in text.split(","))
    return tuple(dict.fromkeys(t for t in tags if t))[:MAX_TAGS]


AdminCaller = Annotated[Caller, Depends(admin_caller)]
AnyCaller = Annotated[Caller, Depends(caller)]
Gw = Annotated[Gateway, Depends(gateway)]
Spec = Annotated[dict[str, Any], Body()]


def experiments(gw: Gw) -> ExperimentAdmin:
    if gw.experiments is None:
        raise NotReady("experiments are not available on this server")
    return gw.experiments


Experiments = Annotated[ExperimentAdmin, Depends(experiments)]


class ExperimentOut(BaseModel):
    id: str
    source: str  # "api", or the YAML file it was read from
    created_at: datetime
    updated_at: datetime
    spec: dict[str, Any]  # the YAML shape (docs/experiments.md)

    @classmethod
    def of(cls, stored: StoredExperiment) -> ExperimentOut:
        return cls(
            id=stored.experiment.id,
            source=stored.source,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
            spec=experiment_data(stored.experiment),
        )


class IntervalOut(BaseModel):
    rate: float
    low: float  # 95 % Wilson interval
    high: float

    @classmethod
    def of(cls, interval: Interval) -> IntervalOut:
        return cls(rate=interval.rate, low=interval.low, high=interval.high)


class VariantOut(BaseModel):
    variant: str
    percent: float | None  # None for control: it takes what the variants leave
    turns: int
    users: int
    latency_ms: dict[str, float]  # p50, p90, p99
    error_rate: IntervalOut
    tokens_per_turn: float
    feedback_given: int
    feedback_rate: IntervalOut  # turns that got feedback, of all turns
    thumbs_up: IntervalOut  # thumbs up, of the turns that got feedback


class ReportOut(BaseModel):
    id: str
    killed: bool
    variants: list[VariantOut]

    @classmethod
    def of(cls, found: ExperimentReport) -> ReportOut:
        experiment = found.experiment
        rows = []
        for row in found.variants:
            variant = experiment.variant(row.variant)
            rows.append(
                VariantOut(
                    variant=row.variant,
                    percent=variant.percent if variant is not None else None,
                    turns=row.turns,
                    users=row.users,
                    latency_ms=row.latency_ms,
                    error_rate=IntervalOut.of(row.error_rate),
                    tokens_per_turn=row.tokens_per_turn,
                    feedback_given=row.feedback_given,
                    feedback_rate=IntervalOut.of(row.feedback_rate),
                    thumbs_up=IntervalOut.of(row.thumbs_up),
                )
            )
        return cls(id=experiment.id, killed=experiment.killed, variants=rows)


class ReleaseIn(BaseModel):
    """``personae release``: the first call names the version, later ones ramp or kill."""

    character: str = Field(min_length=1, max_length=64)
    version: str | None = Field(default=None, min_length=6, max_length=64)
    percent: float | None = Field(default=None, ge=0, le=100)
    killed: bool | None = None
    control_version: str | None = Field(default=None, min_length=6, max_length=64)


class FeedbackIn(BaseModel):
    value: Literal["up", "down"]


async def _audit(gw: Gateway, action: str, who: Caller, target: str, **details: Any) -> None:
    if gw.security is not None:
        await gw.security.audit.record([audit_entry(action, who, target, details)])


@router.post("/api/admin/experiments", status_code=201)
async def create_experiment(
    body: Spec, who: AdminCaller, gw: Gw, admin: Experiments
) -> ExperimentOut:
    stored = await admin.create(body)
    await _audit(gw, "experiment.create", who, stored.experiment.id)
    return ExperimentOut.of(stored)


@router.get("/api/admin/experiments")
async def list_experiments(_: AdminCaller, admin: Experiments) -> list[ExperimentOut]:
    return [ExperimentOut.of(s) for s in await admin.all()]


@router.post("/api/admin/experiments/release")
async def release(body: ReleaseIn, who: AdminCaller, gw: Gw, admin: Experiments) -> ExperimentOut:
    stored = await admin.release(
        body.character,
        version=body.version,
        percent=body.percent,
        killed=body.killed,
        control_version=body.control_version,
    )
    changes = body.model_dump(exclude_none=True, exclude={"character"})
    await _audit(gw, "experiment.release", who, stored.experiment.id, **changes)
    return ExperimentOut.of(stored)


@router.get("/api/admin/experiments/{experiment_id}")
async def read_experiment(experiment_id: str, _: AdminCaller, admin: Experiments) -> ExperimentOut:
    return ExperimentOut.of(await admin.get(experiment_id))


@router.patch("/api/admin/experiments/{experiment_id}")
async def change_experiment(
    experiment_id: str, body: Spec, who: AdminCaller, gw: Gw, admin: Experiments
) -> ExperimentOut:
    stored = await admin.change(experiment_id, body)
    await _audit(gw, "experiment.change", who, experiment_id, changes=body)
    return ExperimentOut.of(stored)


@router.delete("/api/admin/experiments/{experiment_id}", status_code=204)
async def delete_experiment(
    experiment_id: str, who: AdminCaller, gw: Gw, admin: Experiments
) -> Response:
    await admin.delete(experiment_id)
    await _audit(gw, "experiment.delete", who, experiment_id)
    return Response(status_code=204)


@router.get("/api/admin/experiments/{experiment_id}/report")
async def experiment_report(
    experiment_id: str, _: AdminCaller, gw: Gw, admin: Experiments
) -> ReportOut:
    return ReportOut.of(await admin.report(experiment_id))


@router.post("/api/messages/{message_id}/feedback")
async def give_feedback(
    message_id: str, body: FeedbackIn, who: AnyCaller, admin: Experiments
) -> dict[str, Any]:
    """Thumbs up or down on a reply, by the conversation's user (``?user=`` for an admin or
    a service acting for one); giving it again replaces it."""
    value = 1 if body.value == "up" else -1
    await admin.feedback(message_id, who.user, value)
    return {"message_id": message_id, "value": body.value}
