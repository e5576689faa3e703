"""Pure status evaluation: conditions, phase, transition times and Events from observations + clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from djm_fixtures import model_with

from datajax_operator.api.status import Condition, DataJaxModelStatus
from datajax_operator.observe import gather, workload_observation
from datajax_operator.plan import OperatorConfig, Problem, make_plan
from datajax_operator.status import (
    Evaluation,
    Observations,
    WorkloadObservation,
    actionable_transitions,
    check_reason,
    evaluate,
    judge,
    transitions,
)

T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
PLAN_MODEL = model_with()
PLAN = make_plan(PLAN_MODEL, OperatorConfig())
VALID = Evaluation(plan=PLAN, problems=[], endpoint="http://m.ns.svc:8000/v1")
HBM = Problem("spec.model.parametersBillions", "70B parameters in bfloat16 need 140.0 GB")


def deployment(available: int, desired: int = 1) -> Observations:
    return Observations(workload=WorkloadObservation("Deployment", "m", desired=desired, available=available))


def conditions(status: DataJaxModelStatus) -> dict[str, Any]:
    return {c.type: c for c in status.conditions}


@pytest.mark.parametrize(
    ("observations", "phase", "workload_reason", "ready"),
    [
        (Observations(workload=None), "Pending", "WorkloadMissing", "False"),
        (deployment(0), "Progressing", "ReplicasUnavailable", "False"),
        (deployment(1), "Ready", "ReplicasAvailable", "True"),
        (deployment(1, desired=2), "Degraded", "ReplicasAvailable", "True"),
        (deployment(0, desired=0), "Progressing", "ScaledToZero", "False"),
        (
            Observations(workload=None, missing_api="leaderworkerset.x-k8s.io/v1 LeaderWorkerSet"),
            "Pending",
            "LeaderWorkerSetCRDMissing",
            "False",
        ),
    ],
)
def test_phase_and_conditions_follow_the_workload(
    observations: Observations, phase: str, workload_reason: str, ready: str
) -> None:
    status = evaluate(VALID, observations, 3, None, T0)
    by_type = conditions(status)
    assert status.phase == phase
    assert by_type["SpecValid"].status == "True"
    assert by_type["WorkloadAvailable"].reason == workload_reason
    assert by_type["Ready"].status == ready
    assert all(c.observed_generation == 3 for c in status.conditions)
    assert status.observed_generation == 3
    assert status.placement is not None and status.placement.workload == PLAN.placement.workload
    assert status.mesh is not None and status.mesh.tensor_parallel == PLAN.mesh.tensor_parallel
    assert status.endpoint == "http://m.ns.svc:8000/v1"


def test_invalid_spec_names_the_check_and_the_field() -> None:
    status = evaluate(Evaluation(plan=None, problems=[HBM]), Observations(workload=None), 1, None, T0)
    by_type = conditions(status)
    assert status.phase == "Invalid"
    assert by_type["SpecValid"].status == "False"
    assert by_type["SpecValid"].reason == "WeightsExceedHBM"
    assert "spec.model.parametersBillions" in by_type["SpecValid"].message
    assert by_type["Ready"].reason == "SpecInvalid"
    assert status.placement is None and status.mesh is None and status.endpoint is None


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("spec.model.parametersBillions", "WeightsExceedHBM"),
        ("spec.model.attentionHeads", "TensorParallelSplitsHeads"),
        ("spec.mesh.shape", "MeshMismatch"),
        ("spec.tpu.topology", "NoTPUPlacement"),
        ("spec.cost.usdPerChipHour", "PriceUnknown"),
        ("spec.serving.env[0].name", "InvalidSpec"),
    ],
)
def test_check_reason(field: str, reason: str) -> None:
    assert check_reason([Problem(field, "x")]) == reason


def test_transition_time_moves_only_with_the_status() -> None:
    first = evaluate(VALID, deployment(0), 1, None, T0)
    # same statuses, different counts in the message, later clock: times kept
    later = evaluate(VALID, deployment(0, desired=2), 1, first, T0 + timedelta(minutes=5))
    assert [c.last_transition_time for c in later.conditions] == [T0, T0, T0]
    assert conditions(later)["WorkloadAvailable"].message != conditions(first)["WorkloadAvailable"].message
    # the workload comes up: only the conditions that flipped move
    up = evaluate(VALID, deployment(1), 1, later, T0 + timedelta(minutes=9))
    times = {c.type: c.last_transition_time for c in up.conditions}
    assert times == {
        "SpecValid": T0,
        "WorkloadAvailable": T0 + timedelta(minutes=9),
        "Ready": T0 + timedelta(minutes=9),
    }


def test_unchanged_observations_give_an_equal_status() -> None:
    """What lets a no-op reconcile skip its status write."""
    first = evaluate(VALID, deployment(1), 2, None, T0)
    stored = DataJaxModelStatus.model_validate(
        first.model_dump(mode="json", by_alias=True, exclude_none=True)
    )
    again = evaluate(VALID, deployment(1), 2, stored, T0 + timedelta(hours=1))
    assert again.model_dump(mode="json", by_alias=True) == stored.model_dump(mode="json", by_alias=True)


def _events(before: DataJaxModelStatus | None, after: DataJaxModelStatus) -> dict[str, tuple[str, str]]:
    """What reconcile posts for a status change: condition type -> (Event type, reason)."""
    return {
        t.condition.type: (t.event_type, t.condition.reason)
        for t in actionable_transitions(before.conditions if before else [], after.conditions)
    }


def _judged(
    observations: Observations, previous: DataJaxModelStatus | None, at: datetime
) -> DataJaxModelStatus:
    """A status with every condition a new model has: the sidecars' ones (none listed yet) too."""
    judgement = judge(PLAN_MODEL.spec, 1, previous, (), at, slice_usd_per_hour=21.6)
    return evaluate(VALID, observations, 1, previous, at, judgement=judgement)


def test_events_only_for_what_a_person_acts_on() -> None:
    """A new model's first pass brings six conditions into being (NoEndpoints, NoMetrics,
    ReplicasUnavailable, ...): none is worth an Event. The model becoming Ready is; so is every
    Warning, and the news that ends one."""
    first = _judged(deployment(0), None, T0)
    assert len(first.conditions) >= 5
    assert _events(None, first) == {}
    up = _judged(deployment(1), first, T0 + timedelta(minutes=1))
    assert _events(first, up) == {"Ready": ("Normal", "Ready")}  # not WorkloadAvailable as well
    down = _judged(deployment(0), up, T0 + timedelta(minutes=2))
    assert _events(up, down) == {
        "WorkloadAvailable": ("Warning", "ReplicasUnavailable"),
        "Ready": ("Warning", "WorkloadUnavailable"),
    }
    assert _events(down, down) == {}
    invalid = evaluate(Evaluation(plan=None, problems=[HBM]), Observations(workload=None), 2, None, T0)
    assert _events(None, invalid)["SpecValid"] == ("Warning", "WeightsExceedHBM")
    fixed = evaluate(VALID, deployment(0), 3, invalid, T0 + timedelta(minutes=1))
    assert _events(invalid, fixed) == {"SpecValid": ("Normal", "PlanValid")}
    missing = Observations(workload=None, missing_api="leaderworkerset.x-k8s.io/v1 LeaderWorkerSet")
    lws = evaluate(VALID, missing, 1, None, T0)
    assert _events(None, lws) == {"WorkloadAvailable": ("Warning", "LeaderWorkerSetCRDMissing")}
    installed = evaluate(VALID, deployment(1), 1, lws, T0 + timedelta(minutes=1))
    assert _events(lws, installed) == {
        "WorkloadAvailable": ("Normal", "ReplicasAvailable"),
        "Ready": ("Normal", "Ready"),
    }
    # every change is still a transition (for whoever wants them all); only these are posted
    assert {t.condition.type for t in transitions([], first.conditions)} == {c.type for c in first.conditions}


def _condition(type_: str, status: str, reason: str) -> Condition:
    return Condition(type=type_, status=status, reason=reason, message="", last_transition_time=T0)


@pytest.mark.parametrize(
    ("before", "after", "posted"),
    [
        (None, ("Unknown", "NoMetrics"), None),  # a breach condition's birth: nothing to act on
        (("Unknown", "Evaluating"), ("False", "UnderCeiling"), None),  # first verdict: fine, as expected
        (("False", "UnderCeiling"), ("True", "CeilingExceeded"), "Warning"),  # a breach
        (("True", "CeilingExceeded"), ("False", "UnderCeiling"), "Normal"),  # ... and its end
        (("True", "CeilingExceeded"), ("Unknown", "NoMetrics"), "Normal"),
    ],
)
def test_breach_events_are_its_start_and_its_end(
    before: tuple[str, str] | None, after: tuple[str, str], posted: str | None
) -> None:
    previous = [_condition("CostCeilingBreached", *before)] if before else []
    found = actionable_transitions(previous, [_condition("CostCeilingBreached", *after)])
    assert [t.event_type for t in found] == ([posted] if posted else [])


def test_planned_cost_from_the_first_pass() -> None:
    """Known before any sidecar answers: the plan's price of the slices run, with the break-even rate
    at the ceiling."""
    first = _judged(deployment(0), None, T0)
    assert first.metrics is None
    assert first.planned_cost is not None
    assert first.planned_cost.usd_per_hour == pytest.approx(PLAN.cost.usd_per_hour)
    assert first.planned_cost.break_even_tokens_per_second == pytest.approx(
        PLAN.cost.breakeven_tokens_per_second, abs=1e-3
    )
    invalid = evaluate(Evaluation(plan=None, problems=[HBM]), Observations(workload=None), 2, None, T0)
    assert invalid.planned_cost is None


def _deployment(generation: int, observed: int, available: int) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "m", "generation": generation},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": observed, "availableReplicas": available},
    }


def test_workload_observation_reads_the_controller_status() -> None:
    assert workload_observation(_deployment(3, 3, 2)) == WorkloadObservation("Deployment", "m", 2, 2)
    # a status written for an older generation says nothing about the current spec
    assert workload_observation(_deployment(4, 3, 2)).available == 0
    lws = {
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "m", "generation": 1},
        "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 4}},
        "status": {"readyReplicas": 1, "replicas": 1},
    }
    assert workload_observation(lws) == WorkloadObservation("LeaderWorkerSet", "m", 1, 1)
    fresh = {"kind": "Deployment", "metadata": {"name": "m", "generation": 1}, "spec": {"replicas": 1}}
    assert workload_observation(fresh).available == 0
    assert not workload_observation(_deployment(4, 3, 2)).reported
    assert gather(None, "x/v1 Y") == Observations(workload=None, missing_api="x/v1 Y")
    assert gather(None, None) == Observations(workload=None)


def test_a_workload_edit_its_controller_has_not_seen_takes_no_slice_down() -> None:
    """A ``kubectl annotate`` of the Deployment bumps its generation; until its controller reports on
    it, the stored count stands: no write, no WorkloadAvailable/Ready flap. A new model has no stored
    count, so nothing is available."""
    serving = evaluate(VALID, Observations(workload=workload_observation(_deployment(3, 3, 2))), 1, None, T0)
    edited = Observations(workload=workload_observation(_deployment(4, 3, 2)))
    later = T0 + timedelta(seconds=30)
    assert evaluate(VALID, edited, 1, serving, later) == serving
    fresh = evaluate(VALID, edited, 1, None, T0)
    assert fresh.available_replicas == 0
    assert conditions(fresh)["WorkloadAvailable"].reason == "ReplicasUnavailable"
    # once the controller reports, its count is the truth (a rollout that takes slices down)
    down = evaluate(
        VALID, Observations(workload=workload_observation(_deployment(4, 4, 0))), 1, serving, later
    )
    assert conditions(down)["WorkloadAvailable"].status == "False"
