"""The pure decide step of a pass (DESIGN §2: gather -> pure decide -> apply what changed -> write once).

Two halves, both pure (no kopf, no client, no clock of their own), shared by the operator's reconcile
and by ``datajax-operator replay``, so the judgement a user replays offline is the operator's own:

- ``decide``: the model as read, the operator config, the previous status, the judgement's memory
  and this pass's scrapes -> the plan, the cost judgement (with the replica count as data: what the
  cost action allows) and the children to render;
- ``conclude``: that decision and what the cluster reports about the workload -> the status, whether
  it is worth a write, and the Events to post.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from datajax_operator.api.errors import validation_problems
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.api.status import DataJaxModelStatus
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.gate_request import COMPILE_GATE_FIELD, GateError
from datajax_operator.plan.planner import make_plan
from datajax_operator.plan.problems import PlanError, Problem
from datajax_operator.render.gate import planned_gate
from datajax_operator.render.names import label_selector
from datajax_operator.render.objects import render_objects
from datajax_operator.status.autoscale import decide_scale
from datajax_operator.status.conditions import actionable_transitions
from datajax_operator.status.evaluate import Evaluation, evaluate
from datajax_operator.status.judge import Judgement, judge
from datajax_operator.status.observations import Observations, SidecarScrape
from datajax_operator.status.recent import Recent
from datajax_operator.status.writes import worth_writing

CARRIED_INTERVALS = 3
"""A slice's last good figures stand in for failed scrapes for this many observation intervals."""


@dataclass(frozen=True)
class Decision:
    """What one pass decided before touching the cluster."""

    evaluation: Evaluation
    judgement: Judgement | None
    """None when the spec cannot be planned (no judgement without a plan)."""
    desired: list[dict[str, Any]]
    """The children to apply, rendered with the replica count the judgement allows."""
    refresh: timedelta = timedelta(minutes=10)
    """How old the stored figures may grow before they are rewritten: the model's cost window."""
    gate: dict[str, Any] | None = None
    """The compile gate's Job (spec.plan.compileGate): the workload in ``desired`` is applied only
    once its verdict says the program fits (``status.gate.gate_passes``)."""

    @property
    def replicas(self) -> int | None:
        """The slices rendered: the autoscaler's count with ``spec.scaling``, else what the cost
        action allows; None without a plan."""
        if self.evaluation.scale is not None:
            return self.evaluation.scale.replicas
        return self.judgement.replicas if self.judgement is not None else None


@dataclass(frozen=True)
class Notice:
    """An Event to post about the model. ``key`` (actions only) makes it idempotent: the same
    decision taken twice is posted once (see ``status.actions.Action``)."""

    event_type: str
    reason: str
    message: str
    key: str | None = None
    action: bool = False
    """An action's Event (posted before the status write), not a condition change's."""


@dataclass(frozen=True)
class Conclusion:
    status: DataJaxModelStatus
    write: bool
    notices: tuple[Notice, ...]
    """Condition changes a person acts on (only with a write) and cost actions."""

    @property
    def actions(self) -> tuple[Notice, ...]:
        return tuple(n for n in self.notices if n.action)


def previous_status(raw: dict[str, Any]) -> DataJaxModelStatus | None:
    """The stored status; None when absent or unreadable (hand-edited?: recomputed and overwritten)."""
    try:
        return DataJaxModelStatus.model_validate(raw["status"]) if raw.get("status") else None
    except ValidationError:
        return None


def _endpoint(objects: list[dict[str, Any]]) -> str | None:
    for obj in objects:
        if obj["kind"] == "Service":
            meta = obj["metadata"]
            port = next(p["port"] for p in obj["spec"]["ports"] if p["name"] == "http")
            return f"http://{meta['name']}.{meta['namespace']}.svc:{port}/v1"
    return None


def _selector(objects: list[dict[str, Any]]) -> str | None:
    """The Service's selector as a label-selector string: one pod per slice (the leader of a multi-host
    slice), what the scale subresource gives an HPA to average pod metrics over."""
    for obj in objects:
        if obj["kind"] == "Service":
            return label_selector(obj["spec"]["selector"])
    return None


def decide(
    raw: dict[str, Any],
    config: OperatorConfig,
    sidecars: Sequence[SidecarScrape],
    now: datetime,
    *,
    wave_spec: dict[str, Any] | Problem | None,
    recent: Recent | None = None,
    sidecars_unlisted: str | None = None,
) -> Decision:
    """The plan, the cost judgement and the rendered children, or the problems that prevent them.
    ``sidecars_unlisted``: why the sidecars could not even be listed (see ``status.judge``)."""
    if isinstance(wave_spec, Problem):
        return Decision(Evaluation(plan=None, problems=[wave_spec]), None, [])
    try:
        model = DataJaxModel.model_validate(raw)
        plan = make_plan(model, config, wave_spec)
    except ValidationError as err:
        return Decision(Evaluation(plan=None, problems=validation_problems(err)), None, [])
    except PlanError as err:
        return Decision(Evaluation(plan=None, problems=err.problems), None, [])
    try:
        gate = planned_gate(model, plan, config)
    except GateError as err:
        return Decision(Evaluation(plan=None, problems=[Problem(COMPILE_GATE_FIELD, str(err))]), None, [])
    previous = previous_status(raw)
    slice_usd_per_hour = plan.placement.chips * plan.cost.usd_per_chip_hour
    judgement = judge(
        model.spec,
        raw["metadata"].get("generation") or 0,
        previous,
        sidecars,
        now,
        slice_usd_per_hour=slice_usd_per_hour,
        recent=recent,
        max_age=timedelta(seconds=CARRIED_INTERVALS * config.observe_interval_seconds),
        sidecars_unlisted=sidecars_unlisted,
    )
    replicas = judgement.replicas
    scale = None
    roof = plan.capacity.roofline if plan.capacity is not None else None
    if model.spec.scaling is not None and roof is not None:
        # spec.scaling: the autoscaler decides the count instead (status.autoscale)
        scale = decide_scale(
            model.spec,
            raw["metadata"].get("generation") or 0,
            previous,
            sidecars,
            now,
            roof=roof,
            slice_usd_per_hour=slice_usd_per_hour,
        )
        replicas = scale.replicas
    objects = render_objects(model, plan, config, replicas=replicas)
    evaluation = Evaluation(
        plan=plan, problems=[], endpoint=_endpoint(objects), selector=_selector(objects), scale=scale
    )
    return Decision(
        evaluation, judgement, objects, refresh=timedelta(seconds=model.spec.cost.window_seconds), gate=gate
    )


def conclude(
    raw: dict[str, Any],
    decision: Decision,
    observations: Observations,
    now: datetime,
) -> Conclusion:
    """The status of this pass, whether to write it, and the Events to post."""
    previous = previous_status(raw)
    generation = raw["metadata"].get("generation")
    status = evaluate(
        decision.evaluation, observations, generation, previous, now, judgement=decision.judgement
    )
    write = worth_writing(previous, status, now, decision.refresh)
    notices: list[Notice] = []
    if write:
        for change in actionable_transitions(previous.conditions if previous else [], status.conditions):
            condition = change.condition
            notices.append(
                Notice(
                    change.event_type,
                    condition.reason,
                    f"{condition.type} is {condition.status}: {condition.message}",
                )
            )
    scale_actions = decision.evaluation.scale.actions if decision.evaluation.scale is not None else ()
    for action in (*(decision.judgement.actions if decision.judgement is not None else ()), *scale_actions):
        notices.append(
            Notice("Warning" if action.warning else "Normal", action.reason, action.message, action.key, True)
        )
    return Conclusion(status, write, tuple(notices))
