"""The DataJaxModel status (DESIGN §3): what the operator observed and decided.

Metric figures are rounded when they are set, so `kubectl get djm` prints `2.315`, not
`2.3149999999999995`; NaN and infinities (no traffic in the window) become absent fields, never zero.
"""

import math
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from datajax_operator.api.base import StatusModel

Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "Invalid", "Suspended"]
Workload = Literal["Deployment", "LeaderWorkerSet"]
ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """A condition in the metav1.Condition shape, keyed by type."""

    type: str = Field(
        min_length=1,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Condition type, e.g. Ready, SpecValid, CostCeilingBreached.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason for the last transition, e.g. InsufficientTraffic.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: datetime = Field(
        description="When the status last changed; kept when a reconcile finds the same status."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )


class PlacementStatus(StatusModel):
    """Where the model runs, as derived by the planner."""

    generation: str = Field(description="TPU generation.")
    accelerator: str = Field(description="Node label cloud.google.com/gke-tpu-accelerator.")
    topology: str = Field(description="Node label cloud.google.com/gke-tpu-topology.")
    chips: int = Field(ge=1, description="Chips in one slice.")
    hosts: int = Field(ge=1, description="TPU VMs (pods) per slice.")
    chips_per_host: int = Field(ge=1, description="Chips per VM: the google.com/tpu request of each pod.")
    machine_type: str = Field(description="GKE machine type of the node pool.")
    workload: Workload = Field(description="Kind of the workload: Deployment (one host) or LeaderWorkerSet.")


class MeshStatus(StatusModel):
    """The JAX mesh each vLLM engine process builds, and how a replica's engines are arranged."""

    axes: list[str] = Field(description="Mesh axis names.")
    shape: list[int] = Field(
        description="Size of each axis of the mesh one engine process builds: (1, tp), since vLLM runs "
        "one engine process per data-parallel rank."
    )
    tensor_parallel: int = Field(ge=1, description="Tensor-parallel degree (--tensor-parallel-size).")
    data_parallel: int = Field(ge=1, description="Data-parallel degree (--data-parallel-size).")
    pipeline_parallel: int = Field(
        default=1, ge=1, description="Pipeline stages (--pipeline-parallel-size); one per host by default."
    )
    engines: int | None = Field(
        default=None, ge=1, description="Engine processes per replica (one per data-parallel rank)."
    )
    structure: str | None = Field(
        default=None, max_length=256, description="The replica's engines, stages and per-process mesh."
    )


def _round(value: float | None, digits: int) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return round(value, digits)


class MetricsStatus(StatusModel):
    """Figures measured by the serving sidecars over spec.cost.window; absent when not measurable."""

    cost_usd_per_million_tokens: float | None = Field(
        default=None, alias="costUSDPerMillionTokens", description="Measured US dollars per million tokens."
    )
    cost_usd_per_hour: float | None = Field(
        default=None, alias="costUSDPerHour", description="Cost of all replicas per hour in US dollars."
    )
    break_even_tokens_per_second: float | None = Field(
        default=None, description="Tokens per second at which the cost equals the ceiling."
    )
    p95_latency_seconds: float | None = Field(default=None, description="p95 end-to-end request latency.")
    p95_ttft_seconds: float | None = Field(
        default=None, alias="p95TTFTSeconds", description="p95 time to first token."
    )
    prefix_cache_hit_ratio: float | None = Field(
        default=None, ge=0, le=1, description="Prefix-cache hits over queries, in tokens."
    )
    tokens_per_second: float | None = Field(
        default=None, ge=0, description="Tokens per second on the cost basis."
    )
    sampled_at: datetime | None = Field(default=None, description="When the figures were computed.")

    @field_validator(
        "cost_usd_per_million_tokens",
        "cost_usd_per_hour",
        "break_even_tokens_per_second",
        "p95_latency_seconds",
        "p95_ttft_seconds",
        "prefix_cache_hit_ratio",
        "tokens_per_second",
        mode="before",
    )
    @classmethod
    def _readable(cls, value: float | None) -> float | None:
        """Printer columns show numbers verbatim: keep 3 decimals, and drop NaN (no traffic) rather than
        lie."""
        return _round(value, 3)


class PlannedCostStatus(StatusModel):
    """The plan's cost of the slices the operator runs: the provisioned price, known from the first
    pass, before any sidecar has measured anything. Shown marked as planned until status.metrics has
    measured figures; never judged against the ceiling (only measured tokens are)."""

    usd_per_hour: float = Field(
        ge=0,
        description="US dollars per hour: chips per slice x slices run x the price per chip-hour.",
    )
    break_even_tokens_per_second: float = Field(
        ge=0, description="Tokens per second at which the planned cost equals the ceiling."
    )

    @field_validator("usd_per_hour", "break_even_tokens_per_second", mode="before")
    @classmethod
    def _readable(cls, value: float) -> float | None:
        """Three decimals, as the measured figures."""
        return _round(value, 3)


CostSample = Literal["Above", "Below", "InsufficientTraffic", "NoMetrics"]
LatencySample = Literal["Above", "Below", "NoRequests", "NoMetrics"]


class CostEvaluation(StatusModel):
    """What the cost judgement carries from one pass to the next, kept here rather than in the
    operator's memory so a restarted operator resumes the same window and the same actions."""

    generation: int = Field(
        ge=0,
        description="metadata.generation these actions belong to; any spec change starts afresh (it lifts "
        "a suspension and a scale-down).",
    )
    sample: CostSample = Field(
        description="How the recent samples judged the cost: Above or Below the ceiling, "
        "InsufficientTraffic (below cost.minTokensPerSecond) or NoMetrics (no sidecar figures).",
    )
    since: datetime = Field(
        description="First sample of the current run of the same judgement; the run decides the "
        "CostCeilingBreached condition once it lasts a whole cost.window.",
    )
    replicas: int | None = Field(
        default=None,
        ge=0,
        description="Slices the workload runs while a ScaleDown is in effect (absent: spec.replicas).",
    )
    scaled_down_at: datetime | None = Field(
        default=None, description="When ScaleDown last removed a slice (at most one per window)."
    )
    suspended: bool | None = Field(
        default=None,
        description="True while Suspend holds the workload at 0 slices, until the spec changes.",
    )


class LatencyEvaluation(StatusModel):
    """The run of p95 judgements behind LatencySLOBreached (set only with an SLO)."""

    sample: LatencySample = Field(
        description="Above or Below slo.p95LatencySeconds, NoRequests (no finished request in the "
        "window) or NoMetrics.",
    )
    since: datetime = Field(description="First sample of the current run of the same judgement.")


CapacitySource = Literal["Roofline", "Learned"]


class LatencyFit(StatusModel):
    """The online fit of 1/p95 against load per slice (exponentially forgetting least squares), kept
    in status so a restarted operator resumes it: sums of the weighted samples, the lowest p95 and the
    highest load seen."""

    key: str = Field(
        max_length=512,
        description="What the fit was learned for (model, TPU, topology, mesh, context); a change starts "
        "afresh.",
    )
    samples: int = Field(ge=0, description="Samples taken since the fit started.")
    weight: float = Field(ge=0, description="Sum of the sample weights.")
    load: float = Field(description="Weighted sum of load per slice (tokens/s).")
    inverse_p95: float = Field(description="Weighted sum of 1/p95 (1/s).")
    load_squared: float = Field(description="Weighted sum of the squared load.")
    load_inverse_p95: float = Field(description="Weighted sum of load x 1/p95.")
    min_p95: float | None = Field(
        default=None, gt=0, description="Lowest p95 seen (s): the fit's anchor at no load."
    )
    max_load: float | None = Field(
        default=None, ge=0, description="Highest load per slice seen (tokens/s): the fit's trust region."
    )
    sampled_at: datetime | None = Field(default=None, description="When the last sample was taken.")


class AskedCount(StatusModel):
    """The count one pass asked for."""

    at: datetime = Field(description="When.")
    replicas: int = Field(ge=0, description="Slices asked for.")


class ScalingStatus(StatusModel):
    """What the autoscaler (spec.scaling) saw and decided; see docs/autoscaling.md."""

    generation: int = Field(ge=0, description="metadata.generation the decision belongs to.")
    spec_replicas: int = Field(
        ge=0,
        description="spec.replicas when decided: a new value (kubectl scale, an HPA) restarts the count "
        "from it.",
    )
    desired_replicas: int = Field(ge=0, description="Slices the operator runs now.")
    demand_tokens_per_second: float | None = Field(
        default=None, ge=0, description="Demand estimate: tokens/s (prompt + generated) over all slices."
    )
    demand_requests_per_second: float | None = Field(
        default=None, ge=0, description="Requests/s over all slices, from the sidecars."
    )
    capacity_tokens_per_second: float | None = Field(
        default=None,
        ge=0,
        description="Tokens/s one slice serves with p95 at the SLO, learned or (before enough samples) "
        "seeded from the roofline.",
    )
    capacity_source: CapacitySource | None = Field(
        default=None, description="Roofline (the seed) or Learned (from this model's own samples)."
    )
    slo_replicas: int | None = Field(
        default=None, ge=0, description="N_min: fewest slices that keep p95 under the SLO at this demand."
    )
    ceiling_replicas: int | None = Field(
        default=None,
        ge=0,
        description="N_max: most slices whose cost stays under the ceiling at this demand.",
    )
    recent: list[AskedCount] = Field(
        default_factory=list,
        max_length=1000,
        description="Changes of the count asked for within the last scaleDownStabilization, and the one in "
        "force before it: a scale-down keeps the largest.",
    )
    idle_since: datetime | None = Field(
        default=None, description="Since when no traffic was measured (for scaleToZeroAfter)."
    )
    last_scale_time: datetime | None = Field(default=None, description="When the count last changed.")
    scale_up_from: int | None = Field(
        default=None, ge=0, description="Slices before the scale-up in progress (its cold start is timed)."
    )
    expected_cold_start_seconds: int | None = Field(
        default=None,
        ge=0,
        description="How long a new slice takes to serve: the last scale-up measured, else the startup "
        "probe's allowance (serving.startupTimeoutSeconds).",
    )
    fit: LatencyFit | None = Field(default=None, description="The latency fit behind capacity.")


class CompileCacheStatus(StatusModel):
    """The XLA compile cache of the model's pods, and what the serving sidecars saw of it at start."""

    path: str = Field(description="VLLM_XLA_CACHE_PATH: a directory keyed by the compiled shape.")
    volume: str = Field(description="weights (the model.storage volume), persistentVolumeClaim or gcsFuse.")
    hits: int | None = Field(
        default=None, ge=0, description="Slices whose pod started with compiled programs in the cache."
    )
    misses: int | None = Field(
        default=None, ge=0, description="Slices whose pod started with an empty cache and compiled."
    )
    startup_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Longest pod start to first answer among the slices (weight load plus XLA compile).",
    )


class DataJaxModelStatus(StatusModel):
    """Observed state of a DataJaxModel."""

    phase: Phase | None = Field(
        default=None,
        description="Summary: Pending, Progressing, Ready, Degraded, Invalid (spec rejected) or Suspended.",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation last reconciled."
    )
    placement: PlacementStatus | None = Field(default=None, description="Derived TPU placement.")
    mesh: MeshStatus | None = Field(default=None, description="Derived JAX mesh.")
    compile_cache: CompileCacheStatus | None = Field(
        default=None, description="Where the XLA compile cache lives and whether starts found it warm."
    )
    endpoint: str | None = Field(default=None, description="In-cluster URL of the OpenAI-compatible API.")
    metrics: MetricsStatus | None = Field(default=None, description="Cost, latency and cache figures.")
    planned_cost: PlannedCostStatus | None = Field(
        default=None,
        description="The plan's $/hour and break-even for the slices run: what the model costs before the "
        "sidecars measure it (metrics.costUSDPerHour once they do).",
    )
    cost_evaluation: CostEvaluation | None = Field(
        default=None, description="State of the cost-ceiling judgement and its actions."
    )
    latency_evaluation: LatencyEvaluation | None = Field(
        default=None, description="State of the latency-objective judgement."
    )
    replicas: int | None = Field(
        default=None,
        ge=0,
        description="Slices the workload runs (the scale subresource's status.replicas).",
    )
    available_replicas: int | None = Field(
        default=None, ge=0, description="Slices the workload's controller reports available."
    )
    selector: str | None = Field(
        default=None,
        description="Label selector of one pod per slice (the scale subresource's status.selector, so an "
        "HPA can average pod metrics per slice).",
    )
    scaling: ScalingStatus | None = Field(
        default=None, description="The autoscaler's figures and decision (with spec.scaling)."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Conditions keyed by type: SpecValid, WorkloadAvailable, MetricsAvailable, "
        "PlanRegistered, CompileGate (with spec.plan.compileGate), "
        "CostCeilingBreached, LatencySLOBreached, ScalingFeasible, Ready.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
