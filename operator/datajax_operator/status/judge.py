"""The sidecars' figures + the previous status + the recent memory + now -> metrics, the metric
conditions and the cost action.

Pure, like the rest of ``status``: the clock is an argument, and the memory is the previous status
(the runs and what the actions put in force, so an operator restart resumes the same window and the
same actions) plus ``Recent`` (each slice's last good figures, see ``status.recent``).

Noise. A scrape that fails is ordinary (a pod restarting, a slow sidecar, a lost packet), and must
neither reset nor advance a judgement:
- a slice whose scrape failed is judged on its last good figures while they are at most ``max_age``
  old (the operator passes 3 observation intervals); older, it counts as unread: still billed at the
  plan's price of a slice, its traffic unknown (``aggregate``);
- ``MetricsAvailable`` is therefore False only when a slice has had no good scrape for ``max_age``,
  i.e. over the last few intervals, not at every single failure;
- a pass that still cannot be judged (NoMetrics: some slice unread, or no slice answered at all, so
  that every figure is carried) is a gap: the run it interrupts keeps its start,
  is not established by it, and no action is taken on it; only a whole window (at least ``max_age``)
  without a judgeable sample turns the run into NoMetrics (Unknown).

Hysteresis. Each judgeable pass turns the aggregated figures into one *sample*: Above or Below the
ceiling, or InsufficientTraffic (summed tokens/s below ``cost.minTokensPerSecond``). Consecutive
samples of the same kind, gaps aside, form a *run*, whose start is kept in ``status.costEvaluation``
(``sample``, ``since``). CostCeilingBreached follows a run once the samples it has cover a whole
``cost.window``: True for Above, False for Below, Unknown otherwise. Until then the condition keeps
the status it had (an Unknown one takes the reason of the current sample), so no single sample flips
it. LatencySLOBreached works the same way on p95 against ``slo.p95LatencySeconds``.

Actions (``cost.action``, one object each in ``status.actions``) respond to established runs: an
Above run calls the action's ``on_breach``, a Below run its ``on_restore``; what they put in force is
recorded in ``status.costEvaluation`` and the replica count to render is derived from it and the
spec (the user's spec is never edited). Any spec change (a new ``metadata.generation``) starts a
fresh run and drops what the actions put in force, which is also how a suspended model is resumed.
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
from datajax_operator.status.actions import ACTIONS, Action, Enforcement, Situation
from datajax_operator.status.aggregate import ModelFigures, aggregate
from datajax_operator.status.conditions import Verdict
from datajax_operator.status.devices import devices_verdict
from datajax_operator.status.observations import SidecarScrape
from datajax_operator.status.recent import Recent, SliceView, carry

_REASON_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

NO_METRICS = "NoMetrics"
"""The sample of a pass that cannot be judged: a gap in a run, never a run of its own until it
lasted a whole window."""


@dataclass(frozen=True)
class Judgement:
    """What the sidecars' figures decide for one pass."""

    metrics: MetricsStatus | None
    verdicts: tuple[Verdict, ...]
    """MetricsAvailable, PlanRegistered and DevicesMatch (with a plan), CostCeilingBreached,
    LatencySLOBreached (with an SLO), in that order."""
    cost: CostEvaluation
    latency: LatencyEvaluation | None
    replicas: int
    """Slices the workload should run: spec.replicas, fewer under ScaleDown, 0 under Suspend."""
    suspended: bool
    actions: tuple[Action, ...]
    recent: Recent
    """The memory to pass to the next pass's judgement."""


@dataclass(frozen=True)
class Run:
    """A run of samples of one kind after this pass."""

    sample: str
    since: datetime
    established: bool
    """Its samples cover a whole window."""
    fresh: bool
    """This pass fed it a judgeable sample (False on a gap): only then may an action respond."""


def advance(
    sample: str,
    *,
    before_sample: str | None,
    before_since: datetime | None,
    judged_at: datetime | None,
    now: datetime,
    window: timedelta,
    tolerance: timedelta,
) -> Run:
    """The run after this pass's ``sample`` (``NoMetrics``: a gap). ``judged_at`` is the last pass
    with a judgeable sample (None: none since the operator started; the gap is counted from now); a
    gap longer than ``tolerance`` ends the run."""
    if sample != NO_METRICS:
        since = before_since if before_since is not None and before_sample == sample else now
        return Run(sample, since, now - since >= window, fresh=True)
    last = judged_at if judged_at is not None else now
    if before_sample is not None and before_since is not None and before_sample != NO_METRICS:
        if now - last < tolerance:  # a gap: the run holds, as of its last judgeable sample
            return Run(before_sample, before_since, last - before_since >= window, fresh=False)
        return Run(NO_METRICS, last, True, fresh=False)  # too long without figures
    since = before_since if before_since is not None and before_sample == NO_METRICS else now
    return Run(NO_METRICS, since, now - since >= window, fresh=False)


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


def _metrics_verdict(views: Sequence[SliceView], max_age: timedelta, unlisted: str | None) -> Verdict:
    if unlisted is not None:
        return Verdict(
            METRICS_AVAILABLE,
            "False",
            ENDPOINTS_UNREADABLE,
            f"the operator cannot list the EndpointSlices of the model's Service ({unlisted}): grant "
            "its ServiceAccount get, list and watch on endpointslices.discovery.k8s.io (the chart's "
            "RBAC does); the workload is reconciled meanwhile, without figures",
        )
    if not views:
        return Verdict(
            METRICS_AVAILABLE,
            "False",
            "NoEndpoints",
            "no ready sidecar endpoint (port metrics) in the EndpointSlices of the model's Service",
        )
    unread = [v for v in views if v.figures is None]
    if unread:
        causes = "; ".join(f"{v.endpoint}: {v.error}" for v in unread)
        return Verdict(
            METRICS_AVAILABLE,
            "False",
            "ScrapeFailed",
            f"{len(unread)} of {len(views)} sidecars not scraped for {max_age.total_seconds():g} s "
            f"({causes})",
        )
    down = [v.endpoint for v in views if v.figures is not None and not v.figures.upstream_up]
    if down:
        return Verdict(
            METRICS_AVAILABLE,
            "False",
            "UpstreamDown",
            f"{len(down)} of {len(views)} sidecars cannot scrape vLLM ({', '.join(down)}): still "
            "starting or compiling?",
        )
    return Verdict(
        METRICS_AVAILABLE,
        "True",
        "SidecarsScraped",
        f"{len(views)} sidecar(s) scraped within the last {max_age.total_seconds():g} s",
    )


def _plan_verdict(views: Sequence[SliceView]) -> Verdict:
    answered = [v.figures for v in views if v.figures is not None]
    if not answered:
        return Verdict(PLAN_REGISTERED, "Unknown", NO_METRICS, "no sidecar answered")
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


def _cost_sample(figures: ModelFigures | None, ceiling: float) -> CostSample:
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


_COST_VERDICTS: dict[str, tuple[ConditionStatus, str, str]] = {
    "Above": ("True", "CeilingExceeded", "above the ceiling"),
    "Below": ("False", "UnderCeiling", "under the ceiling"),
    "InsufficientTraffic": ("Unknown", "InsufficientTraffic", "too little traffic to judge"),
    NO_METRICS: ("Unknown", NO_METRICS, "no figures"),
}

_LATENCY_VERDICTS: dict[str, tuple[ConditionStatus, str, str]] = {
    "Above": ("True", "SLOExceeded", "p95 above the objective"),
    "Below": ("False", "WithinSLO", "p95 within the objective"),
    "NoRequests": ("Unknown", "NoRequests", "no finished request"),
    NO_METRICS: ("Unknown", NO_METRICS, "no figures"),
}


def _run_verdict(
    kind: str,
    table: dict[str, tuple[ConditionStatus, str, str]],
    run: Run,
    previous: Condition | None,
    message: str,
) -> Verdict:
    status, reason, _ = table[run.sample]
    return _held(
        previous,
        Verdict(kind, status, reason, message),
        Verdict(kind, "Unknown", reason if status == "Unknown" else "Evaluating", message),
        run.established,
    )


def _latency(
    spec: DataJaxModelSpec,
    figures: ModelFigures | None,
    previous: DataJaxModelStatus | None,
    previous_conditions: dict[str, Condition],
    *,
    recent: Recent,
    now: datetime,
    max_age: timedelta,
) -> tuple[Verdict, LatencyEvaluation, Run] | None:
    if spec.slo is None:
        return None
    slo = spec.slo.p95_latency_seconds
    sample: LatencySample
    if figures is None or math.isnan(figures.tokens_per_second):
        sample = "NoMetrics"  # some slice's traffic unknown: its p95 too
    elif math.isnan(figures.p95_latency_seconds):
        sample = "NoRequests"
    else:
        sample = "Above" if figures.p95_latency_seconds > slo else "Below"
    before = previous.latency_evaluation if previous is not None else None
    window = timedelta(seconds=spec.cost.window_seconds)
    run = advance(
        sample,
        before_sample=before.sample if before else None,
        before_since=before.since if before else None,
        judged_at=recent.judged_at.get("latency"),
        now=now,
        window=window,
        tolerance=max(window, max_age),
    )
    p95 = "unknown" if sample == NO_METRICS or figures is None else f"{figures.p95_latency_seconds:.3f} s"
    if sample == "NoRequests":
        p95 = "unknown"
    message = (
        f"p95 {p95} against a {slo:g} s objective: {_LATENCY_VERDICTS[run.sample][2]} since "
        f"{_stamp(run.since)} (judged once it lasts the {spec.cost.window} window)"
    )
    verdict = _run_verdict(
        LATENCY_SLO_BREACHED, _LATENCY_VERDICTS, run, previous_conditions.get(LATENCY_SLO_BREACHED), message
    )
    return verdict, LatencyEvaluation(sample=run.sample, since=run.since), run


def _judged_at(recent: Recent, runs: dict[str, Run], now: datetime) -> dict[str, datetime]:
    judged = dict(recent.judged_at)
    for name, run in runs.items():
        if run.fresh:
            judged[name] = now
        else:
            judged.setdefault(name, now)  # a gap seen first after a restart is counted from here
    return judged


def judge(
    spec: DataJaxModelSpec,
    generation: int,
    previous: DataJaxModelStatus | None,
    sidecars: Sequence[SidecarScrape],
    now: datetime,
    *,
    slice_usd_per_hour: float,
    recent: Recent | None = None,
    max_age: timedelta = timedelta(seconds=90),
    sidecars_unlisted: str | None = None,
) -> Judgement:
    """Metrics, metric conditions, the new evaluation state, the replicas to render and the memory for
    the next pass.

    ``slice_usd_per_hour`` is the plan's price of one slice: what a slice without figures still costs
    (see ``aggregate``). ``recent`` is what the last pass returned (None: nothing remembered);
    ``max_age`` how long a slice's last good figures stand in for a failed scrape;
    ``sidecars_unlisted`` is why no endpoint could be listed (then ``sidecars`` is empty and the
    figures are unknown: a gap, like any pass without figures)."""
    memory = recent if recent is not None else Recent()
    cost = spec.cost
    views, kept = carry(sidecars, memory, now, max_age)
    answered = [v.figures for v in views if v.figures is not None]
    figures = (
        aggregate(
            answered,
            basis=cost.basis,
            ceiling=cost.ceiling_usd_per_million_tokens,
            min_tokens_per_second=cost.min_tokens_per_second,
            unread=len(views) - len(answered),
            slice_usd_per_hour=slice_usd_per_hour,
        )
        if answered
        else None
    )
    previous_conditions = {c.type: c for c in previous.conditions} if previous is not None else {}
    before = previous.cost_evaluation if previous is not None else None
    if before is not None and before.generation != generation:
        before = None  # a new spec: a fresh run, and what the actions put in force is dropped
    window = timedelta(seconds=cost.window_seconds)

    # figures carried for every slice are no news: such a pass is a gap, it cannot advance a run
    news = figures if any(v.figures is not None and not v.carried for v in views) else None
    run = advance(
        _cost_sample(news, cost.ceiling_usd_per_million_tokens),
        before_sample=before.sample if before else None,
        before_since=before.since if before else None,
        judged_at=memory.judged_at.get("cost"),
        now=now,
        window=window,
        tolerance=max(window, max_age),
    )
    action = ACTIONS[cost.action]
    state = Enforcement(
        replicas=before.replicas if before is not None else None,
        scaled_down_at=before.scaled_down_at if before is not None else None,
        suspended=bool(before.suspended) if before is not None else False,
    )
    text = _figures_text(figures, spec)
    taken: tuple[Action, ...] = ()
    if run.established and run.fresh and run.sample in ("Above", "Below"):
        situation = Situation(spec.replicas, generation, run.since, window, now, text)
        respond = action.on_breach if run.sample == "Above" else action.on_restore
        state, taken = respond(state, situation)

    message = (
        f"{text}; {_COST_VERDICTS[run.sample][2]} since {_stamp(run.since)} (judged once it lasts the "
        f"{cost.window} window)"
    )
    cost_verdict = action.verdict(state, text) or _run_verdict(
        COST_CEILING_BREACHED, _COST_VERDICTS, run, previous_conditions.get(COST_CEILING_BREACHED), message
    )

    verdicts = [_metrics_verdict(views, max_age, sidecars_unlisted)]
    if spec.plan is not None and spec.plan.config_map_ref is not None:
        verdicts.append(_plan_verdict(views))
        verdicts.append(devices_verdict(sidecars))
    verdicts.append(cost_verdict)
    latency = _latency(spec, news, previous, previous_conditions, recent=memory, now=now, max_age=max_age)
    runs = {"cost": run}
    if latency is not None:
        verdicts.append(latency[0])
        runs["latency"] = latency[2]

    return Judgement(
        metrics=_metrics(figures, now) if figures is not None else None,
        verdicts=tuple(verdicts),
        cost=CostEvaluation(
            generation=generation,
            sample=run.sample,
            since=run.since,
            replicas=state.replicas,
            scaled_down_at=state.scaled_down_at,
            suspended=True if state.suspended else None,
        ),
        latency=latency[1] if latency is not None else None,
        replicas=action.replicas(state, spec.replicas),
        suspended=state.suspended,
        actions=taken,
        recent=Recent(slices=kept, judged_at=_judged_at(memory, runs, now)),
    )
