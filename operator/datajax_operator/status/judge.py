"""The sidecars' figures + the previous status + now -> metrics, the metric conditions and the cost action.

Pure, like the rest of ``status``: the clock is an argument and the only memory is the previous
status, so an operator restart resumes exactly where the last one stopped.

Hysteresis. Each pass turns the aggregated figures into one *sample*: Above or Below the ceiling,
InsufficientTraffic (summed tokens/s below ``cost.minTokensPerSecond``) or NoMetrics (no sidecar
figures). Consecutive samples of the same kind form a *run*, whose start is kept in
``status.costEvaluation`` (``sample``, ``since``). CostCeilingBreached follows a run only once the run
has lasted a whole ``cost.window``: True for Above, False for Below, Unknown for the other two. Until
then the condition keeps the status it had (an Unknown one takes the reason of the current sample),
so one bad sample, or a scrape that fails once, never flips it. LatencySLOBreached works the same
way on p95 against ``slo.p95LatencySeconds``.

Actions (``cost.action``) follow an established Above run:
- ScaleDown removes one slice, at most once per window, never below 1; an established Below run
  restores ``spec.replicas``;
- Suspend holds the workload at 0 slices until the spec changes.
The user's spec is never edited: the replica count to render is derived here from the spec and
``status.costEvaluation``. Any spec change (a new ``metadata.generation``) starts a fresh run and
drops the actions, which is also how a suspended model is resumed.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from datajax_operator.api.constants import (
    COST_CEILING_BREACHED,
    LATENCY_SLO_BREACHED,
    METRICS_AVAILABLE,
    PLAN_REGISTERED,
)
from datajax_operator.api.spec import DataJaxModelSpec
from datajax_operator.api.status import (
    Condition,
    ConditionStatus,
    CostEvaluation,
    CostSample,
    DataJaxModelStatus,
    LatencyEvaluation,
    LatencySample,
    MetricsStatus,
)
from datajax_operator.status.aggregate import ModelFigures, aggregate
from datajax_operator.status.conditions import Verdict
from datajax_operator.status.observations import SidecarScrape

_REASON_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


@dataclass(frozen=True)
class Action:
    """Something the cost action did in this pass, worth its own Event."""

    reason: str
    message: str
    warning: bool


@dataclass(frozen=True)
class Judgement:
    """What the sidecars' figures decide for one pass."""

    metrics: MetricsStatus | None
    verdicts: tuple[Verdict, ...]
    """MetricsAvailable, PlanRegistered (with a plan), CostCeilingBreached, LatencySLOBreached (with an
    SLO), in that order."""
    cost: CostEvaluation
    latency: LatencyEvaluation | None
    replicas: int
    """Slices the workload should run: spec.replicas, fewer under ScaleDown, 0 under Suspend."""
    suspended: bool
    actions: tuple[Action, ...]


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _metrics(figures: ModelFigures, now: datetime) -> MetricsStatus:
    return MetricsStatus(
        cost_usd_per_million_tokens=figures.usd_per_million_tokens,
        cost_usd_per_hour=figures.usd_per_hour,
        break_even_tokens_per_second=figures.breakeven_tokens_per_second,
        p95_latency_seconds=figures.p95_latency_seconds,
        p95_ttft_seconds=figures.p95_ttft_seconds,
        prefix_cache_hit_ratio=figures.prefix_cache_hit_ratio,
        tokens_per_second=figures.tokens_per_second,
        sampled_at=now,
    )


ENDPOINTS_UNREADABLE = "EndpointSlicesUnreadable"
"""MetricsAvailable=False: the API server refused the operator the EndpointSlices of the Service."""


def _metrics_verdict(sidecars: Sequence[SidecarScrape], unlisted: str | None) -> Verdict:
    if unlisted is not None:
        return Verdict(
            METRICS_AVAILABLE,
            "False",
            ENDPOINTS_UNREADABLE,
            f"the operator cannot list the EndpointSlices of the model's Service ({unlisted}): grant "
            "its ServiceAccount get, list and watch on endpointslices.discovery.k8s.io (the chart's "
            "RBAC does); the workload is reconciled meanwhile, without figures",
        )
    if not sidecars:
        return Verdict(
            METRICS_AVAILABLE,
            "False",
            "NoEndpoints",
            "no ready sidecar endpoint (port metrics) in the EndpointSlices of the model's Service",
        )
    failed = [s for s in sidecars if s.figures is None]
    if failed:
        causes = "; ".join(f"{s.endpoint}: {s.error}" for s in failed)
        return Verdict(
            METRICS_AVAILABLE,
            "False",
            "ScrapeFailed",
            f"{len(failed)} of {len(sidecars)} sidecars did not answer ({causes})",
        )
    down = [s.endpoint for s in sidecars if s.figures is not None and not s.figures.upstream_up]
    if down:
        return Verdict(
            METRICS_AVAILABLE,
            "False",
            "UpstreamDown",
            f"{len(down)} of {len(sidecars)} sidecars cannot scrape vLLM ({', '.join(down)}): still "
            "starting or compiling?",
        )
    return Verdict(METRICS_AVAILABLE, "True", "SidecarsScraped", f"{len(sidecars)} sidecar(s) answered")


def _plan_verdict(sidecars: Sequence[SidecarScrape]) -> Verdict:
    answered = [s.figures for s in sidecars if s.figures is not None]
    if not answered:
        return Verdict(PLAN_REGISTERED, "Unknown", "NoMetrics", "no sidecar answered")
    if any(f.plan_registered is None for f in answered):
        return Verdict(PLAN_REGISTERED, "Unknown", "NotReported", "a sidecar reports no plan status")
    missing = [f for f in answered if not f.plan_registered]
    if not missing:
        return Verdict(PLAN_REGISTERED, "True", "Registered", f"registered on {len(answered)} slice(s)")
    reason = missing[0].plan_reason or "Pending"
    if not reason[:1].isalpha() or not set(reason) <= _REASON_CHARS:
        reason = "NotRegistered"
    return Verdict(
        PLAN_REGISTERED,
        "False",
        reason,
        f"the vLLM plugin has not registered the plan on {len(missing)} of {len(answered)} slice(s) "
        f"({reason}; see the sidecar's datajax_plan_info)",
    )


def _cost_sample(figures: ModelFigures | None, min_tokens_per_second: float, ceiling: float) -> CostSample:
    if figures is None or math.isnan(figures.tokens_per_second):
        return "NoMetrics"
    if math.isnan(figures.usd_per_million_tokens):
        return "InsufficientTraffic"
    return "Above" if figures.usd_per_million_tokens > ceiling else "Below"


def _figures_text(figures: ModelFigures | None, spec: DataJaxModelSpec) -> str:
    cost = spec.cost
    if figures is None:
        return "no sidecar figures"
    tokens = "unknown" if math.isnan(figures.tokens_per_second) else f"{figures.tokens_per_second:.1f}"
    mtok = (
        "not judged"
        if math.isnan(figures.usd_per_million_tokens)
        else f"${figures.usd_per_million_tokens:.3f}/Mtok"
    )
    return (
        f"{mtok} ({cost.basis} basis) against a ${cost.ceiling_usd_per_million_tokens:g}/Mtok ceiling over "
        f"the {cost.window} window: {tokens} tokens/s from {figures.sidecars} slice(s) costing "
        f"${figures.usd_per_hour:.2f}/h (break-even {figures.breakeven_tokens_per_second:.1f} tokens/s, "
        f"minimum judged {cost.min_tokens_per_second:g} tokens/s)"
    )


def _held(
    previous: Condition | None, established: Verdict, pending: Verdict, is_established: bool
) -> Verdict:
    """The run's own verdict once it lasted a window; before that the previous status is kept (an
    Unknown one takes the ``pending`` reason), with the message of now."""
    if is_established:
        return established
    if previous is None or previous.status == "Unknown":
        return pending
    # a suspension belongs to the generation that was suspended; held past it, it is a plain breach
    reason = "CeilingExceeded" if previous.reason == "Suspended" else previous.reason
    return Verdict(pending.type, previous.status, reason, pending.message)


def _since(
    previous_sample: str | None, previous_since: datetime | None, sample: str, now: datetime
) -> datetime:
    if previous_since is not None and previous_sample == sample:
        return previous_since
    return now


_COST_VERDICTS: dict[CostSample, tuple[ConditionStatus, str, str]] = {
    "Above": ("True", "CeilingExceeded", "above the ceiling"),
    "Below": ("False", "UnderCeiling", "under the ceiling"),
    "InsufficientTraffic": ("Unknown", "InsufficientTraffic", "too little traffic to judge"),
    "NoMetrics": ("Unknown", "NoMetrics", "no figures"),
}

_LATENCY_VERDICTS: dict[LatencySample, tuple[ConditionStatus, str, str]] = {
    "Above": ("True", "SLOExceeded", "p95 above the objective"),
    "Below": ("False", "WithinSLO", "p95 within the objective"),
    "NoRequests": ("Unknown", "NoRequests", "no finished request"),
    "NoMetrics": ("Unknown", "NoMetrics", "no figures"),
}


def _latency(
    spec: DataJaxModelSpec,
    figures: ModelFigures | None,
    previous: DataJaxModelStatus | None,
    previous_conditions: dict[str, Condition],
    now: datetime,
) -> tuple[Verdict, LatencyEvaluation] | None:
    if spec.slo is None:
        return None
    slo = spec.slo.p95_latency_seconds
    sample: LatencySample
    if figures is None:
        sample = "NoMetrics"
    elif math.isnan(figures.p95_latency_seconds):
        sample = "NoRequests"
    else:
        sample = "Above" if figures.p95_latency_seconds > slo else "Below"
    before = previous.latency_evaluation if previous is not None else None
    since = _since(before.sample if before else None, before.since if before else None, sample, now)
    window = timedelta(seconds=spec.cost.window_seconds)
    status, reason, words = _LATENCY_VERDICTS[sample]
    p95 = (
        "unknown"
        if figures is None or math.isnan(figures.p95_latency_seconds)
        else (f"{figures.p95_latency_seconds:.3f} s")
    )
    message = (
        f"p95 {p95} against a {slo:g} s objective: {words} since {_stamp(since)} "
        f"(judged once it lasts the {spec.cost.window} window)"
    )
    verdict = _held(
        previous_conditions.get(LATENCY_SLO_BREACHED),
        Verdict(LATENCY_SLO_BREACHED, status, reason, message),
        Verdict(LATENCY_SLO_BREACHED, "Unknown", reason if status == "Unknown" else "Evaluating", message),
        now - since >= window,
    )
    return verdict, LatencyEvaluation(sample=sample, since=since)


def judge(
    spec: DataJaxModelSpec,
    generation: int,
    previous: DataJaxModelStatus | None,
    sidecars: Sequence[SidecarScrape],
    now: datetime,
    *,
    slice_usd_per_hour: float,
    sidecars_unlisted: str | None = None,
) -> Judgement:
    """Metrics, metric conditions, the new evaluation state and the replicas to render.

    ``slice_usd_per_hour`` is the plan's price of one slice: what a slice whose sidecar could not be
    read still costs (see ``aggregate``); ``sidecars_unlisted`` is why no endpoint could be listed
    (then ``sidecars`` is empty and the figures are unknown)."""
    cost = spec.cost
    answered = [s.figures for s in sidecars if s.figures is not None]
    figures = (
        aggregate(
            answered,
            basis=cost.basis,
            ceiling=cost.ceiling_usd_per_million_tokens,
            min_tokens_per_second=cost.min_tokens_per_second,
            unread=len(sidecars) - len(answered),
            slice_usd_per_hour=slice_usd_per_hour,
        )
        if answered
        else None
    )
    previous_conditions = {c.type: c for c in previous.conditions} if previous is not None else {}
    before = previous.cost_evaluation if previous is not None else None
    if before is not None and before.generation != generation:
        before = None  # a new spec: a fresh run, and the actions of the old spec are dropped
    window = timedelta(seconds=cost.window_seconds)

    sample = _cost_sample(figures, cost.min_tokens_per_second, cost.ceiling_usd_per_million_tokens)
    since = _since(before.sample if before else None, before.since if before else None, sample, now)
    established = now - since >= window
    replicas = before.replicas if before is not None else None
    scaled_down_at = before.scaled_down_at if before is not None else None
    suspended = bool(before.suspended) if before is not None else False
    actions: list[Action] = []
    text = _figures_text(figures, spec)

    if cost.action == "ScaleDown" and established and sample == "Above":
        current = spec.replicas if replicas is None else replicas
        if current > 1 and (scaled_down_at is None or now - scaled_down_at >= window):
            replicas, scaled_down_at = current - 1, now
            actions.append(
                Action(
                    "ScaledDown",
                    f"cost.action ScaleDown: {current} -> {replicas} slices; {text}",
                    warning=True,
                )
            )
    elif cost.action == "ScaleDown" and established and sample == "Below" and replicas is not None:
        actions.append(
            Action(
                "ScaledUp",
                f"cost under the ceiling for a whole window: back to spec.replicas {spec.replicas} "
                f"slices (from {replicas}); {text}",
                warning=False,
            )
        )
        replicas, scaled_down_at = None, None
    if cost.action == "Suspend" and established and sample == "Above" and not suspended:
        suspended = True
        actions.append(Action("Suspended", f"cost.action Suspend: 0 slices; {text}", warning=True))

    status, reason, words = _COST_VERDICTS[sample]
    message = f"{text}; {words} since {_stamp(since)} (judged once it lasts the {cost.window} window)"
    if suspended:
        cost_verdict = Verdict(
            COST_CEILING_BREACHED,
            "True",
            "Suspended",
            f"{text}. Suspended by cost.action Suspend: the workload runs 0 slices. To resume, change "
            "anything in the spec (e.g. raise cost.ceilingUSDPerMillionTokens, or set cost.action to "
            "Alert): a new generation restores spec.replicas and judges the cost afresh.",
        )
    else:
        cost_verdict = _held(
            previous_conditions.get(COST_CEILING_BREACHED),
            Verdict(COST_CEILING_BREACHED, status, reason, message),
            Verdict(
                COST_CEILING_BREACHED, "Unknown", reason if status == "Unknown" else "Evaluating", message
            ),
            established,
        )

    verdicts = [_metrics_verdict(sidecars, sidecars_unlisted)]
    if spec.plan is not None and spec.plan.config_map_ref is not None:
        verdicts.append(_plan_verdict(sidecars))
    verdicts.append(cost_verdict)
    latency = _latency(spec, figures, previous, previous_conditions, now)
    if latency is not None:
        verdicts.append(latency[0])

    if suspended:
        effective = 0
    elif replicas is not None:
        effective = min(replicas, spec.replicas)
    else:
        effective = spec.replicas
    return Judgement(
        metrics=_metrics(figures, now) if figures is not None else None,
        verdicts=tuple(verdicts),
        cost=CostEvaluation(
            generation=generation,
            sample=sample,
            since=since,
            replicas=replicas,
            scaled_down_at=scaled_down_at,
            suspended=True if suspended else None,
        ),
        latency=latency[1] if latency is not None else None,
        replicas=effective,
        suspended=suspended,
        actions=tuple(actions),
    )
