"""Stored DataJaxModel documents and Events as the status command reads them from the API server.

Placement, mesh and cost come from the real planner on the Llama 3.1 8B example, the figures from
the cost formula, so the screens in the golden files show numbers the operator would write.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from djm_fixtures import ROOT

from datajax_operator.api.resource import DataJaxModel
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
EXAMPLE = yaml.safe_load((ROOT / "examples" / "llama3-8b-v6e.yaml").read_text())
PLAN = make_plan(DataJaxModel.model_validate(EXAMPLE), OperatorConfig())


def stamp(ago: timedelta) -> str:
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, status: str, reason: str, message: str, ago: timedelta) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": stamp(ago),
        "observedGeneration": 2,
    }


def metrics(tokens_per_second: float | None, **extra: Any) -> dict[str, Any]:
    """A status.metrics block whose $/Mtok follows from the plan's $/hour and the traffic."""
    usd_per_hour = PLAN.cost.usd_per_hour
    block: dict[str, Any] = {
        "costUSDPerHour": usd_per_hour,
        "breakEvenTokensPerSecond": round(PLAN.cost.breakeven_tokens_per_second, 3),
        "sampledAt": stamp(timedelta(seconds=12)),
    }
    if tokens_per_second is not None:
        block["tokensPerSecond"] = tokens_per_second
        block["costUSDPerMillionTokens"] = round(usd_per_hour / (tokens_per_second * 3600) * 1e6, 3)
    block.update(extra)
    return block


def model(
    *,
    phase: str | None,
    conditions: list[dict[str, Any]],
    metrics_block: dict[str, Any] | None = None,
    name: str = "llama3-8b",
    namespace: str = "serving",
    observed_generation: int | None = 2,
    planned: bool = True,
) -> dict[str, Any]:
    doc = copy.deepcopy(EXAMPLE)
    doc["metadata"].update(
        name=name,
        namespace=namespace,
        uid=f"uid-{name}",
        generation=2,
        creationTimestamp=stamp(timedelta(hours=5, minutes=10)),
    )
    status: dict[str, Any] = {"conditions": conditions}
    if phase is not None:
        status["phase"] = phase
    if observed_generation is not None:
        status["observedGeneration"] = observed_generation
    if planned:
        status["placement"] = PLAN.placement.to_json()
        status["mesh"] = PLAN.mesh.to_json()
        status["endpoint"] = f"http://{name}.{namespace}.svc:8000/v1"
        status["plannedCost"] = {
            "usdPerHour": PLAN.cost.usd_per_hour,
            "breakEvenTokensPerSecond": round(PLAN.cost.breakeven_tokens_per_second, 3),
        }
    if metrics_block is not None:
        status["metrics"] = metrics_block
    doc["status"] = status
    return doc


SPEC_OK = condition(
    "SpecValid", "True", "PlanValid", "8 v6e chips (2x4) on 1 host(s) as a Deployment", timedelta(hours=5)
)
AVAILABLE = condition(
    "WorkloadAvailable", "True", "ReplicasAvailable", "1/1 slices available in Deployment llama3-8b",
    timedelta(hours=4, minutes=52),
)  # fmt: skip
READY = condition(
    "Ready", "True", "Ready", "1/1 slices available in Deployment llama3-8b", timedelta(hours=4, minutes=52)
)
SCRAPED = condition(
    "MetricsAvailable", "True", "SidecarsScraped", "1/1 sidecars scraped", timedelta(hours=4, minutes=50)
)


def ready_model() -> dict[str, Any]:
    """Serving under its ceiling and SLO."""
    return model(
        phase="Ready",
        conditions=[
            SPEC_OK, AVAILABLE, SCRAPED,
            condition("CostCeilingBreached", "False", "UnderCeiling", "2.314 $/Mtok over 10m, ceiling 3",
                      timedelta(hours=4, minutes=40)),
            condition("LatencySLOBreached", "False", "WithinSLO", "p95 1.84 s over 10m, objective 5 s",
                      timedelta(hours=4, minutes=40)),
            READY,
        ],
        metrics_block=metrics(
            2592.6, p95LatencySeconds=1.84, p95TTFTSeconds=0.21, prefixCacheHitRatio=0.412
        ),
    )  # fmt: skip


def breached_model() -> dict[str, Any]:
    """Ready but over its ceiling and its SLO, with figures 25 minutes old."""
    return model(
        name="llama3-8b-batch",
        phase="Ready",
        conditions=[
            SPEC_OK, AVAILABLE,
            condition("MetricsAvailable", "False", "ScrapeFailed", "0/1 sidecars answered",
                      timedelta(minutes=25)),
            condition("CostCeilingBreached", "True", "AboveCeiling",
                      "4.286 $/Mtok above the ceiling 3 for the whole 10m window", timedelta(minutes=31)),
            condition("LatencySLOBreached", "True", "AboveSLO", "p95 6.2 s above the objective 5 s",
                      timedelta(minutes=31)),
            READY,
        ],
        metrics_block=dict(
            metrics(1400.0, p95LatencySeconds=6.2, p95TTFTSeconds=1.9, prefixCacheHitRatio=0.05),
            sampledAt=stamp(timedelta(minutes=25)),
        ),
    )  # fmt: skip


def unjudged_model() -> dict[str, Any]:
    """Progressing, too little traffic for a $/Mtok figure: every unknown says why."""
    return model(
        name="llama3-8b-canary",
        phase="Progressing",
        conditions=[
            SPEC_OK,
            condition("WorkloadAvailable", "False", "ReplicasUnavailable",
                      "0/1 slices available in Deployment llama3-8b-canary", timedelta(minutes=3)),
            SCRAPED,
            condition("CostCeilingBreached", "Unknown", "InsufficientTraffic",
                      "0.4 tokens/s is below spec.cost.minTokensPerSecond 1", timedelta(minutes=3)),
            condition("Ready", "False", "WorkloadUnavailable",
                      "0/1 slices available in Deployment llama3-8b-canary", timedelta(minutes=3)),
        ],
        metrics_block={k: v for k, v in metrics(None).items() if k != "breakEvenTokensPerSecond"},
    )  # fmt: skip


def applied_model() -> dict[str, Any]:
    """Seconds after `kubectl apply`: planned and deployed, nothing measured yet (no sidecar listed)."""
    doc = model(
        name="llama3-8b-applied",
        phase="Progressing",
        conditions=[
            condition("SpecValid", "True", "PlanValid", "8 v6e chips (2x4) on 1 host(s) as a Deployment",
                      timedelta(seconds=20)),
            condition("WorkloadAvailable", "False", "ReplicasUnavailable",
                      "0/1 slices available in Deployment llama3-8b-applied", timedelta(seconds=20)),
            condition("MetricsAvailable", "False", "NoEndpoints",
                      "no ready sidecar endpoint (port metrics) in the EndpointSlices of the model's "
                      "Service", timedelta(seconds=20)),
            condition("CostCeilingBreached", "Unknown", "NoMetrics", "no sidecar figures; no figures",
                      timedelta(seconds=20)),
            condition("LatencySLOBreached", "Unknown", "NoMetrics", "p95 unknown against a 5 s objective",
                      timedelta(seconds=20)),
            condition("Ready", "False", "WorkloadUnavailable",
                      "0/1 slices available in Deployment llama3-8b-applied", timedelta(seconds=20)),
        ],
    )  # fmt: skip
    doc["metadata"]["creationTimestamp"] = stamp(timedelta(seconds=25))
    return doc


def invalid_model() -> dict[str, Any]:
    """A spec the planner rejects, and a status one generation behind (nothing deployed)."""
    message = "spec.tpu.topology: 3x3 is not a v6e topology (1x1, 2x2, 2x4, 4x4, 4x8, 8x8, 8x16, 16x16)"
    return model(
        name="llama3-8b-typo",
        phase="Invalid",
        observed_generation=1,
        planned=False,
        conditions=[
            condition("SpecValid", "False", "NoTPUPlacement", message, timedelta(minutes=1)),
            condition("WorkloadAvailable", "False", "SpecInvalid",
                      "no workload is deployed for an invalid spec", timedelta(minutes=1)),
            condition("Ready", "False", "SpecInvalid", message, timedelta(minutes=1)),
        ],
    )  # fmt: skip


def fresh_model() -> dict[str, Any]:
    """Just applied: no status at all (no operator, or not yet reconciled)."""
    doc = model(name="llama3-8b-new", phase=None, conditions=[], observed_generation=None, planned=False)
    del doc["status"]
    return doc


def core_event(
    reason: str, message: str, ago: timedelta, count: int = 1, type_: str = "Normal"
) -> dict[str, Any]:
    """An Event as core/v1 stores it (what the operator posts)."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"llama3-8b.{reason.lower()}", "namespace": "serving"},
        "involvedObject": {"kind": "DataJaxModel", "name": "llama3-8b", "uid": "uid-llama3-8b"},
        "type": type_,
        "reason": reason,
        "message": message,
        "count": count,
        "firstTimestamp": stamp(ago + timedelta(minutes=count)),
        "lastTimestamp": stamp(ago),
        "source": {"component": "datajax-operator"},
        "reportingComponent": "datajax.dev/operator",
    }


def new_event(reason: str, note: str, ago: timedelta, count: int | None = None) -> dict[str, Any]:
    """An Event as events.k8s.io/v1 writes it: note, eventTime, series, reportingController."""
    event: dict[str, Any] = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": f"llama3-8b.{reason.lower()}", "namespace": "serving"},
        "regarding": {"kind": "DataJaxModel", "name": "llama3-8b", "uid": "uid-llama3-8b"},
        "type": "Warning",
        "reason": reason,
        "note": note,
        "action": "Observe",
        "eventTime": (NOW - ago - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": "example.com/budget-bot",
        "reportingInstance": "budget-bot-0",
    }
    if count is not None:
        event["series"] = {"count": count, "lastObservedTime": (NOW - ago).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    return event


def ready_events() -> list[dict[str, Any]]:
    return [
        core_event("PlanValid", "SpecValid is True: 8 v6e chips (2x4) on 1 host(s) as a Deployment",
                   timedelta(hours=5)),
        core_event("ReplicasAvailable",
                   "WorkloadAvailable is True: 1/1 slices available in Deployment llama3-8b",
                   timedelta(hours=4, minutes=52)),
        new_event("BudgetReview", "weekly spend 3,628.80 USD, within the team budget",
                  timedelta(minutes=40), 3),
        core_event("UnderCeiling", "CostCeilingBreached is False: 2.314 $/Mtok over 10m, ceiling 3",
                   timedelta(hours=4, minutes=40)),
    ]  # fmt: skip
