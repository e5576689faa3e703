"""What the operator saw in the cluster, as plain data: the input of the pure status evaluation.

``observe.py`` fills these from the API server and the sidecars; tests build them by hand, so
evaluation stays a pure function of (spec, plan, observations, now).
"""

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WorkloadObservation:
    """The serving workload (Deployment or LeaderWorkerSet) as its controller last reported it.

    ``available`` counts slices that serve: a Deployment's available replicas, a LeaderWorkerSet's
    ready groups (a group is ready only when every host of the slice is).
    """

    kind: str
    name: str
    desired: int
    available: int
    reported: bool = True
    """Whether the controller's status describes the workload's current generation. False right
    after an edit (ours, or a person's ``kubectl annotate``: a Deployment counts annotations in its
    generation) until its controller has looked: ``available`` is then 0, and the model's status
    keeps the count last reported (``status.evaluate``)."""


@dataclass(frozen=True)
class SidecarFigures:
    """What one serving sidecar (one slice) exported, over its own window; NaN where it exports NaN."""

    usd_per_hour: float
    prompt_tokens_per_second: float
    generation_tokens_per_second: float
    prefix_cache_hit_ratio: float
    p95_e2e_latency_seconds: float
    p95_ttft_seconds: float
    window_seconds: float
    upstream_up: bool
    requests_per_second: float = math.nan
    """Finished requests per second over the window (NaN when the sidecar does not export it)."""
    plan_registered: bool | None = None
    """None when the sidecar reports no plan (it was started without --plan-status)."""
    plan_reason: str | None = None
    """The reason the vLLM plugin gave (CamelCase), from datajax_plan_info."""
    devices_match: bool | None = None
    """The plugin's start-up device check, from datajax_devices_match; None until a check ran."""
    xla_cache_hit: bool | None = None
    """datajax_xla_cache_hit: the pod started with compiled programs (None: not exported)."""
    startup_seconds: float | None = None
    """datajax_startup_seconds: pod start to vLLM's first answer (None until vLLM has answered)."""


@dataclass(frozen=True)
class SidecarScrape:
    """One sidecar endpoint of the model and what a scrape of it gave: figures or an error."""

    endpoint: str
    figures: SidecarFigures | None
    error: str | None = None


@dataclass(frozen=True)
class Scrapes:
    """One pass's look at the model's sidecars: a scrape per endpoint listed, or why none could be
    listed (the API server refused the EndpointSlices, e.g. a 403 when RBAC lacks them)."""

    sidecars: tuple[SidecarScrape, ...] = ()
    unlisted: str | None = None
    """The refusal, as the API server gave it; None when the EndpointSlices were read."""


@dataclass(frozen=True)
class GateObservation:
    """The compile gate's Job (``spec.plan.compileGate``) as the cluster reports it: the verdict its
    pod left as the termination message, or why it ended without one; neither while it compiles."""

    job: str
    verdict: dict[str, Any] | None = None
    """The compact verdict (``datajax_runtime.compile_gate.compact_verdict``)."""
    failure: str | None = None
    """Why the Job ended without a verdict (the gate's error, the log's tail, the Job's condition)."""


@dataclass(frozen=True)
class Observations:
    """Everything gathered for one model in one reconcile."""

    workload: WorkloadObservation | None
    """None when no workload exists (not created yet, or the spec is invalid)."""
    missing_api: str | None = None
    """The API the plan needs but the cluster does not serve, e.g. the LeaderWorkerSet CRD."""
    sidecars: tuple[SidecarScrape, ...] = ()
    """Every sidecar endpoint found in the Service's EndpointSlices, scraped in this pass."""
    not_owned: tuple[str, ...] = ()
    """Children (``Kind/name``) whose name is taken by an object this model does not control; the
    operator leaves those objects untouched."""
    unscheduled: str | None = None
    """Why the model's pods that the scheduler could not place are Pending, in the scheduler's words
    (their PodScheduled=False condition); None when every pod is placed or none was looked at."""
    gate: GateObservation | None = None
    """The compile gate's Job; None when spec.plan.compileGate is off."""
