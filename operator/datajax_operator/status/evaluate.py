"""observations + plan + now -> the model's status (DESIGN §3), a pure function.

The clock is an argument so a test can step time, and so a reconcile that finds nothing new computes
a status equal to the stored one (same transition times) and writes nothing.
"""

from dataclasses import dataclass, replace
from datetime import datetime

from datajax_operator.api.constants import READY, SPEC_VALID, WORKLOAD_AVAILABLE
from datajax_operator.api.status import (
    CompileCacheStatus,
    Condition,
    DataJaxModelStatus,
    MeshStatus,
    Phase,
    PlacementStatus,
    PlannedCostStatus,
)
from datajax_operator.plan.cost import breakeven_tokens_per_second
from datajax_operator.plan.planner import Plan
from datajax_operator.plan.problems import Problem
from datajax_operator.status.autoscale import ScaleDecision
from datajax_operator.status.conditions import Verdict, settle
from datajax_operator.status.gate import gate_condition
from datajax_operator.status.judge import Judgement
from datajax_operator.status.observations import Observations

CHILD_NOT_OWNED = "ChildNotOwned"
"""WorkloadAvailable=False: a child's name is taken by an object the model does not control."""

# SpecValid=False reasons name the failing check, from the field the planner blames.
_CHECK_BY_FIELD = (
    ("spec.model.parametersBillions", "WeightsExceedHBM"),
    ("spec.model.attentionHeads", "TensorParallelSplitsHeads"),
    ("spec.model.kvHeads", "TensorParallelSplitsKVHeads"),
    ("spec.mesh", "MeshMismatch"),
    ("spec.tpu", "NoTPUPlacement"),
    ("spec.cost", "PriceUnknown"),
    ("spec.plan.waveSpecRef", "WaveSpecUnusable"),
    ("spec.plan.compileGate", "CompileGateUnusable"),
)


def check_reason(problems: list[Problem]) -> str:
    """The CamelCase reason for the first problem's check (``InvalidSpec`` when no check matches)."""
    if not problems:
        return "InvalidSpec"
    first = problems[0].field
    for prefix, reason in _CHECK_BY_FIELD:
        if first == prefix or first.startswith((f"{prefix}.", f"{prefix}[", f"{prefix} (")):
            return reason
    return "InvalidSpec"


@dataclass(frozen=True)
class Evaluation:
    """What the reconcile decided about the spec: a plan, or the problems that prevent one."""

    plan: Plan | None
    problems: list[Problem]
    endpoint: str | None = None
    selector: str | None = None
    """Label selector of one serving pod per slice (status.selector of the scale subresource)."""
    scale: ScaleDecision | None = None
    """The autoscaler's decision (with spec.scaling)."""


def _spec_verdict(evaluation: Evaluation) -> Verdict:
    if evaluation.plan is None:
        return Verdict(
            SPEC_VALID,
            "False",
            check_reason(evaluation.problems),
            "; ".join(str(p) for p in evaluation.problems) or "the spec cannot be planned",
        )
    placement = evaluation.plan.placement
    return Verdict(
        SPEC_VALID,
        "True",
        "PlanValid",
        f"{placement.chips} {placement.generation} chips ({placement.topology}) on {placement.hosts} "
        f"host(s) as a {placement.workload}",
    )


def _workload_verdict(evaluation: Evaluation, observations: Observations) -> Verdict:
    if evaluation.plan is None:
        return Verdict(
            WORKLOAD_AVAILABLE, "False", "SpecInvalid", "no workload is deployed for an invalid spec"
        )
    if observations.missing_api is not None:
        return Verdict(
            WORKLOAD_AVAILABLE,
            "False",
            "LeaderWorkerSetCRDMissing",
            f"a {evaluation.plan.placement.hosts}-host slice needs {observations.missing_api}, which this "
            "cluster does not serve: install LeaderWorkerSet",
        )
    if observations.not_owned:
        taken = ", ".join(observations.not_owned)
        return Verdict(
            WORKLOAD_AVAILABLE,
            "False",
            CHILD_NOT_OWNED,
            f"{taken} already exists and is not controlled by this DataJaxModel: the operator neither "
            "adopts nor deletes it; delete or rename it, or rename the model",
        )
    workload = observations.workload
    if workload is None:
        return Verdict(
            WORKLOAD_AVAILABLE, "False", "WorkloadMissing", "the workload has not been created yet"
        )
    counts = f"{workload.available}/{workload.desired} slices available in {workload.kind} {workload.name}"
    if observations.unscheduled is not None:
        counts += f"; {observations.unscheduled}"
    if workload.desired == 0:
        return Verdict(WORKLOAD_AVAILABLE, "False", "ScaledToZero", counts)
    if workload.available == 0:
        return Verdict(WORKLOAD_AVAILABLE, "False", "ReplicasUnavailable", counts)
    return Verdict(WORKLOAD_AVAILABLE, "True", "ReplicasAvailable", counts)


def _ready_verdict(spec: Verdict, workload: Verdict, gate: Verdict | None) -> Verdict:
    if spec.status != "True":
        return Verdict(READY, "False", "SpecInvalid", spec.message)
    if gate is not None and gate.status != "True":
        # the spec is not what serves until its program fits, whatever an older workload reports
        return Verdict(READY, "False", "CompileGateHeld", gate.message)
    if workload.status != "True":
        return Verdict(READY, "False", "WorkloadUnavailable", workload.message)
    return Verdict(READY, "True", "Ready", workload.message)


def _phase(evaluation: Evaluation, observations: Observations, judgement: Judgement | None) -> Phase:
    if evaluation.plan is None:
        return "Invalid"
    if judgement is not None and judgement.suspended:
        return "Suspended"
    workload = observations.workload
    if observations.missing_api is not None or observations.not_owned or workload is None:
        return "Pending"
    if workload.available == 0:
        return "Progressing"
    return "Ready" if workload.available >= workload.desired else "Degraded"


def compile_cache(plan: Plan, observations: Observations) -> CompileCacheStatus:
    """Where the compile cache is, and what the slices' sidecars reported of their start (issue 15)."""
    reports = [s.figures for s in observations.sidecars if s.figures is not None]
    known = [f.xla_cache_hit for f in reports if f.xla_cache_hit is not None]
    startups = [f.startup_seconds for f in reports if f.startup_seconds is not None]
    return CompileCacheStatus(
        path=plan.storage.xla_cache_dir,
        volume=plan.storage.xla_cache_volume,
        hits=sum(known) if known else None,
        misses=len(known) - sum(known) if known else None,
        startup_seconds=round(max(startups), 1) if startups else None,
    )


def _planned_cost(plan: Plan, judgement: Judgement | None) -> PlannedCostStatus:
    """The plan's price of the slices actually run (fewer under a ScaleDown, none while suspended):
    what a new model costs from its first pass, before any sidecar has measured it."""
    slice_usd_per_hour = plan.placement.chips * plan.cost.usd_per_chip_hour
    if judgement is not None:
        usd_per_hour = slice_usd_per_hour * judgement.replicas
    else:
        usd_per_hour = plan.cost.usd_per_hour
    return PlannedCostStatus(
        usd_per_hour=usd_per_hour,
        break_even_tokens_per_second=breakeven_tokens_per_second(
            usd_per_hour, plan.cost.ceiling_usd_per_million_tokens
        ),
    )


def _last_reported(observations: Observations, previous: DataJaxModelStatus | None) -> Observations:
    """The observations with a workload its controller has not yet reported on (an edit a moment
    ago: ours, or a person's annotation) counted as the stored status last counted it. The edit has
    taken no slice down yet; if it does, the controller's next status says so. Read as nothing
    available, a ``kubectl annotate`` of the Deployment made WorkloadAvailable and Ready flap False
    and back, with their Events and two status writes."""
    workload = observations.workload
    if workload is None or workload.reported or previous is None or previous.available_replicas is None:
        return observations
    return replace(observations, workload=replace(workload, available=previous.available_replicas))


def evaluate(
    evaluation: Evaluation,
    observations: Observations,
    generation: int | None,
    previous: DataJaxModelStatus | None,
    now: datetime,
    *,
    judgement: Judgement | None = None,
) -> DataJaxModelStatus:
    """The complete status of one model. ``now`` must be UTC with whole seconds (metav1.Time's
    precision), so a stored time compares equal to the one computed. ``judgement`` is what the
    sidecars' figures decided in this pass (``status.judge``); None for a spec that has no plan."""
    observations = _last_reported(observations, previous)
    spec = _spec_verdict(evaluation)
    workload = _workload_verdict(evaluation, observations)
    plan = evaluation.plan
    judged = list(judgement.verdicts) if judgement is not None and plan is not None else []
    scale = evaluation.scale if plan is not None else None
    if scale is not None:
        judged.append(scale.verdict)
    gate = gate_condition(observations.gate) if plan is not None and observations.gate is not None else None
    verdicts = [spec, *([gate] if gate else []), workload, *judged, _ready_verdict(spec, workload, gate)]
    running = observations.workload
    previous_conditions: list[Condition] = previous.conditions if previous is not None else []
    kept = judgement if plan is not None else None
    return DataJaxModelStatus(
        phase=_phase(evaluation, observations, kept),
        observed_generation=generation,
        placement=PlacementStatus.model_validate(plan.placement.to_json()) if plan else None,
        mesh=MeshStatus.model_validate(plan.mesh.to_json()) if plan else None,
        compile_cache=compile_cache(plan, observations) if plan else None,
        endpoint=evaluation.endpoint if plan else None,
        metrics=kept.metrics if kept is not None else None,
        planned_cost=_planned_cost(plan, kept) if plan else None,
        cost_evaluation=kept.cost if kept is not None else None,
        latency_evaluation=kept.latency if kept is not None else None,
        replicas=running.desired if running is not None else None,
        available_replicas=running.available if running is not None else None,
        selector=evaluation.selector if plan else None,
        scaling=scale.status if scale is not None else None,
        conditions=settle(verdicts, previous_conditions, generation, now),
    )
