"""spec.scaling: the replica count that keeps p95 under the SLO and $/Mtok under the ceiling, a pure function.

Each pass, from the sidecars' figures over their window:
- demand: tokens/s (prompt + generated) and requests/s summed over the slices;
- capacity: tokens/s one slice serves with p95 at the SLO (``status.capacity_fit``, seeded by the
  roofline of ``plan.roofline`` at the measured request mix);
- the band: N_min = ceil(demand / capacity), the fewest slices meeting the SLO, and
  N_max = floor(demand on the cost basis / break-even tokens/s of one slice), the most slices whose
  cost stays under the ceiling (not binding below cost.minTokensPerSecond, where cost is not judged);
  both within minReplicas..maxReplicas;
- the count: PreferSLO runs N_min with headroom (demand over `HEADROOM` x capacity), kept inside the
  band and below `COST_MARGIN` of the ceiling (never below N_min); PreferCost runs N_min. When the
  band is empty, ScalingFeasible=False (CostSLOInfeasible, with the figures) and the policy picks
  the bound that holds: PreferSLO N_min with its headroom, PreferCost N_max (at least one slice while
  there is traffic).
Fast up, slow down: a larger count is applied at once; a smaller one only when every count asked for
over the last scaleDownStabilization is below the running one, and then the largest of them (the
HorizontalPodAutoscaler's rule; a window not yet observed in full keeps the count), shortened to one
cost window when the running count breaches the ceiling at the measured demand; never while slices
are still starting
(pending pods would be the ones removed before they ever served, and the load they are meant to take
is not measured yet). Never below minReplicas; zero only with
minReplicas 0 once no traffic was seen for scaleToZeroAfter.

The decision and every figure behind it go to ``status.scaling``; the previous status is the only
memory, so a restarted operator resumes exactly.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from datajax_operator.api.constants import SCALING_FEASIBLE
from datajax_operator.api.spec import DataJaxModelSpec, Scaling
from datajax_operator.api.status import (
    AskedCount,
    CapacitySource,
    DataJaxModelStatus,
    LatencyFit,
    ScalingStatus,
)
from datajax_operator.plan.cost import breakeven_tokens_per_second
from datajax_operator.plan.roofline import (
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_PROMPT_TOKENS,
    SEED_EFFICIENCY,
    Roofline,
)
from datajax_operator.status.actions import Action
from datajax_operator.status.capacity_fit import (
    LEARNED_AFTER,
    FitState,
    add_point,
    capacity_at_slo,
    saturated_bound,
)
from datajax_operator.status.conditions import Verdict
from datajax_operator.status.observations import SidecarScrape

SATURATED: Final = 2.0
"""A window whose p95 is above this many SLOs is not a point of the fit: its slices were saturated,
so its load is what they could serve, not what was asked, and its p95 is set by the queue's limits.
It bounds the capacity instead (``capacity_fit.saturated_bound``)."""
MIN_POINT_LOAD: Final = 1.0
"""Tokens/s per slice below which a window is no point of the fit (an idle slice says nothing about
its limit)."""
HEADROOM: Final = 0.7
"""PreferSLO plans for this share of a slice's capacity at the SLO, so noise within a window, the
growth until the next pass and the first minutes of a burst (while new slices start) stay under it."""
COST_MARGIN: Final = 0.9
"""...but for no more slices than keep $/Mtok under this share of the ceiling, so the headroom never
spends the margin the cost judgement needs (slices paid for while they start, noise)."""


@dataclass(frozen=True)
class Demand:
    """What the model's slices served over their window, summed (all slices answered and measured)."""

    slices: int
    tokens_per_second: float
    basis_tokens_per_second: float
    requests_per_second: float | None
    prompt_tokens_per_request: float | None
    output_tokens_per_request: float | None
    p95_latency_seconds: float
    window_seconds: float


def measure_demand(sidecars: Sequence[SidecarScrape], basis: str) -> Demand | None:
    """The summed figures, or None when a sidecar did not answer or has no window yet (a partial sum
    would read as a drop in demand)."""
    figures = [s.figures for s in sidecars]
    if not figures or any(f is None for f in figures):
        return None
    known = [f for f in figures if f is not None]
    prompt = math.fsum(f.prompt_tokens_per_second for f in known)
    output = math.fsum(f.generation_tokens_per_second for f in known)
    if math.isnan(prompt) or math.isnan(output):
        return None
    rps = math.fsum(f.requests_per_second for f in known)
    per_request = not math.isnan(rps) and rps > 0
    p95s = [f.p95_e2e_latency_seconds for f in known if not math.isnan(f.p95_e2e_latency_seconds)]
    return Demand(
        slices=len(known),
        tokens_per_second=prompt + output,
        basis_tokens_per_second=output if basis == "output" else prompt + output,
        requests_per_second=None if math.isnan(rps) else rps,
        prompt_tokens_per_request=prompt / rps if per_request else None,
        output_tokens_per_request=output / rps if per_request else None,
        p95_latency_seconds=max(p95s) if p95s else math.nan,
        window_seconds=min(f.window_seconds for f in known),
    )


@dataclass(frozen=True)
class ScaleDecision:
    """What the autoscaler decided in this pass."""

    replicas: int
    status: ScalingStatus
    verdict: Verdict
    actions: tuple[Action, ...]


def fit_key(spec: DataJaxModelSpec) -> str:
    """What the latency fit is valid for: a new model, slice, mesh or batch starts it afresh."""
    mesh = "x".join(str(n) for n in spec.mesh.shape) if spec.mesh else "derived"
    return (
        f"{spec.model.name}|{spec.tpu.generation}|{spec.tpu.topology}|{mesh}|{spec.model.max_model_len}|"
        f"{spec.serving.max_num_seqs}|{spec.serving.kv_cache_dtype or 'auto'}"
    )


def _fit_state(stored: LatencyFit | None, key: str) -> FitState:
    if stored is None or stored.key != key:
        return FitState(key=key)
    return FitState(
        key=key,
        samples=stored.samples,
        weight=stored.weight,
        sum_x=stored.load,
        sum_y=stored.inverse_p95,
        sum_xx=stored.load_squared,
        sum_xy=stored.load_inverse_p95,
        min_p95=stored.min_p95,
        max_load=stored.max_load,
        sampled_at=stored.sampled_at,
    )


def _stored_fit(state: FitState) -> LatencyFit:
    return LatencyFit(
        key=state.key,
        samples=state.samples,
        weight=state.weight,
        load=state.sum_x,
        inverse_p95=state.sum_y,
        load_squared=state.sum_xx,
        load_inverse_p95=state.sum_xy,
        min_p95=state.min_p95,
        max_load=state.max_load,
        sampled_at=state.sampled_at,
    )


def _clamp(value: int, scaling: Scaling) -> int:
    return max(scaling.min_replicas, min(scaling.max_replicas, value))


def _starting_count(spec: DataJaxModelSpec, before: ScalingStatus | None) -> int:
    """Where this pass starts from: the last decision, unless spec.replicas was changed (kubectl scale,
    an HPA, an edit), which restarts the autoscaler from the new value."""
    assert spec.scaling is not None
    if before is None or before.spec_replicas != spec.replicas:
        return _clamp(spec.replicas, spec.scaling)
    return _clamp(before.desired_replicas, spec.scaling)


def _seed(roof: Roofline, demand: Demand | None) -> tuple[float, float]:
    """(seed capacity, roofline) in total tokens/s per slice at the measured request mix."""
    prompt, output = DEFAULT_PROMPT_TOKENS, DEFAULT_OUTPUT_TOKENS
    if demand is not None and demand.prompt_tokens_per_request and demand.output_tokens_per_request:
        prompt, output = demand.prompt_tokens_per_request, demand.output_tokens_per_request
    ceiling = roof.mixed_tokens_per_second(prompt, output)
    return ceiling * SEED_EFFICIENCY, ceiling


def _slices(tokens_per_second: float, per_slice: float, beyond: int) -> int:
    """Slices serving `tokens_per_second` at `per_slice` each; `beyond` (more than allowed) when the
    capacity is none or too small to count with."""
    needed = tokens_per_second / per_slice if per_slice > 0 else math.inf
    return math.ceil(needed) if needed < beyond else beyond


def _plural(n: int) -> str:
    return f"{n} slice" if n == 1 else f"{n} slices"


def decide_scale(
    spec: DataJaxModelSpec,
    generation: int,
    previous: DataJaxModelStatus | None,
    sidecars: Sequence[SidecarScrape],
    now: datetime,
    *,
    roof: Roofline,
    slice_usd_per_hour: float,
) -> ScaleDecision:
    """The replica count for this pass and the figures behind it (see the module docstring)."""
    scaling, slo = spec.scaling, spec.slo
    assert scaling is not None and slo is not None, "spec.scaling needs spec.slo (a CRD rule)"
    cost = spec.cost
    before = previous.scaling if previous is not None else None
    current = _starting_count(spec, before)
    running = previous.replicas if previous is not None and previous.replicas is not None else current
    available = previous.available_replicas if previous is not None else None
    pending = available is not None and available < running
    demand = measure_demand(sidecars, cost.basis)

    # the fit: one point per sidecar window, from a fleet whose every slice has served that window
    key = fit_key(spec)
    fit = _fit_state(before.fit if before is not None else None, key)
    if (
        demand is not None
        and not math.isnan(demand.p95_latency_seconds)
        and 0 < demand.p95_latency_seconds <= SATURATED * slo.p95_latency_seconds
        and demand.tokens_per_second >= demand.slices * MIN_POINT_LOAD
        and demand.slices == running
        and not pending
        and (fit.sampled_at is None or (now - fit.sampled_at).total_seconds() >= demand.window_seconds)
    ):
        fit = add_point(fit, demand.tokens_per_second / demand.slices, demand.p95_latency_seconds, now)
    seed, top = _seed(roof, demand)
    capacity = capacity_at_slo(fit, slo.p95_latency_seconds, seed, top)
    if demand is not None and demand.p95_latency_seconds > SATURATED * slo.p95_latency_seconds:
        # saturated slices serve about their limit, and at the SLO a slice serves less than that
        load = demand.tokens_per_second / demand.slices
        capacity = min(capacity, saturated_bound(load, fit, slo.p95_latency_seconds))
    source: CapacitySource = "Learned" if fit.samples >= LEARNED_AFTER else "Roofline"
    slice_breakeven = breakeven_tokens_per_second(slice_usd_per_hour, cost.ceiling_usd_per_million_tokens)

    idle_since = before.idle_since if before is not None else None
    stabilization = timedelta(seconds=scaling.scale_down_stabilization_seconds)
    restarted = before is None or before.spec_replicas != spec.replicas
    asked = [] if restarted or before is None else before.recent  # a new spec.replicas holds a window
    slo_replicas: int | None = None
    ceiling_replicas: int | None = None
    actions: list[Action] = []

    if demand is None:
        target = current
        verdict = Verdict(
            SCALING_FEASIBLE,
            "Unknown",
            "NoMetrics",
            f"holding {_plural(current)}: not every sidecar reported a window of figures (see "
            "MetricsAvailable)",
        )
    else:
        idle = demand.tokens_per_second <= 0
        idle_since = (idle_since or now) if idle else None
        slo_replicas = 0 if idle else (_slices(demand.tokens_per_second, capacity, scaling.max_replicas + 1))
        judged = demand.basis_tokens_per_second >= max(cost.min_tokens_per_second, 1e-9)
        ceiling_replicas = (
            math.floor(demand.basis_tokens_per_second / slice_breakeven) if judged else scaling.max_replicas
        )
        low = max(slo_replicas, scaling.min_replicas)
        high = min(ceiling_replicas, scaling.max_replicas)
        feasible = low <= high
        wanted = (
            _slices(demand.tokens_per_second, capacity * HEADROOM, scaling.max_replicas + 1)
            if scaling.policy == "PreferSLO" and capacity > 0 and not idle
            else slo_replicas
        )
        if feasible:
            # headroom for the SLO, as long as it leaves a margin under the ceiling too
            margin = (
                math.floor(COST_MARGIN * demand.basis_tokens_per_second / slice_breakeven) if judged else high
            )
            target = max(low, min(high, margin, wanted))
        elif scaling.policy == "PreferSLO":
            target = _clamp(max(slo_replicas, wanted), scaling)
        else:
            target = _clamp(max(ceiling_replicas, 0 if idle else 1), scaling)
        after = scaling.scale_to_zero_after_seconds
        if idle and scaling.min_replicas == 0 and after is not None and idle_since is not None:
            target = 0 if now - idle_since >= timedelta(seconds=after) else max(target, 1)
        elif target == 0:
            target = max(scaling.min_replicas, 1)
        band = Band(capacity, source, slice_breakeven, slo_replicas, ceiling_replicas, feasible)
        verdict = _feasibility(spec, demand, band, idle)

    # Slow down: over the stabilisation window; over one cost window when the running count breaches
    # the ceiling at this demand (waiting longer would breach it for certain).
    wait = stabilization
    if ceiling_replicas is not None and current > ceiling_replicas:
        wait = min(wait, timedelta(seconds=cost.window_seconds))
    # `asked` holds the changes of the asked count (so a steady pass writes nothing new to status):
    # each holds from its time to the next; the window's largest includes the one in force at its start
    if not asked or asked[-1].replicas != target:
        asked = [*asked, AskedCount(at=now, replicas=target)]
    at_start = [a for a in asked if a.at <= now - wait][-1:]
    keep = max(a.replicas for a in [*at_start, *(a for a in asked if a.at > now - wait)])
    older = at_start  # a window not yet observed in full keeps the count
    recent = [
        *[a for a in asked if a.at <= now - stabilization][-1:],
        *(a for a in asked if a.at > now - stabilization),
    ]
    new = current
    if target > current:
        new = target
    elif target == 0 and current > 0:
        new = 0  # scaleToZeroAfter was the wait
    elif keep < current and older and not pending:  # never while slices are still starting
        new = keep
    last_scale = before.last_scale_time if before is not None else None
    scale_up_from = before.scale_up_from if before is not None else None
    cold_start = before.expected_cold_start_seconds if before is not None else None
    if cold_start is None:
        cold_start = spec.serving.startup_timeout_seconds
    if new != current:
        last_scale = now
        scale_up_from = current if new > current else None
        actions.append(_scale_action(current, new, demand, capacity, slo.p95_latency_seconds))
    elif scale_up_from is not None and last_scale is not None and available is not None and available >= new:
        cold_start, scale_up_from = int((now - last_scale).total_seconds()), None

    status = ScalingStatus(
        generation=generation,
        spec_replicas=spec.replicas,
        desired_replicas=new,
        demand_tokens_per_second=round(demand.tokens_per_second, 3) if demand else None,
        demand_requests_per_second=round(demand.requests_per_second, 3)
        if demand and demand.requests_per_second is not None
        else None,
        capacity_tokens_per_second=round(capacity, 3),
        capacity_source=source,
        slo_replicas=slo_replicas,
        ceiling_replicas=ceiling_replicas,
        recent=recent,
        idle_since=idle_since,
        last_scale_time=last_scale,
        scale_up_from=scale_up_from,
        expected_cold_start_seconds=cold_start,
        fit=_stored_fit(fit),
    )
    return ScaleDecision(replicas=new, status=status, verdict=verdict, actions=tuple(actions))


@dataclass(frozen=True)
class Band:
    """The replica counts that meet each bound at this demand, and the figures they come from."""

    capacity: float
    source: str
    slice_breakeven: float
    slo_replicas: int
    ceiling_replicas: int
    feasible: bool


def _feasibility(spec: DataJaxModelSpec, demand: Demand, band: Band, idle: bool) -> Verdict:
    scaling, slo, cost = spec.scaling, spec.slo, spec.cost
    assert scaling is not None and slo is not None
    figures = (
        f"demand {demand.tokens_per_second:,.1f} tokens/s; one slice serves {band.capacity:,.1f} tokens/s "
        f"at p95 {slo.p95_latency_seconds:g} s ({band.source.lower()}) and must serve "
        f"{band.slice_breakeven:,.1f} tokens/s ({cost.basis} basis) to stay under "
        f"${cost.ceiling_usd_per_million_tokens:g}/Mtok: the SLO needs at least "
        f"{_plural(band.slo_replicas)}, the ceiling allows at most {_plural(band.ceiling_replicas)}, "
        f"spec.scaling allows {scaling.min_replicas}..{scaling.max_replicas}"
    )
    if idle:
        return Verdict(SCALING_FEASIBLE, "True", "NoTraffic", f"no traffic in the window; {figures}")
    if band.feasible:
        return Verdict(SCALING_FEASIBLE, "True", "WithinBounds", figures)
    gives = "the cost ceiling gives" if scaling.policy == "PreferSLO" else "the latency SLO gives"
    return Verdict(
        SCALING_FEASIBLE,
        "False",
        "CostSLOInfeasible",
        f"{figures}; no count meets both, and policy {scaling.policy} decides: {gives}",
    )


def _scale_action(current: int, new: int, demand: Demand | None, capacity: float, slo: float) -> Action:
    why = (
        f"demand {demand.tokens_per_second:,.1f} tokens/s, {capacity:,.1f} tokens/s per slice at p95 "
        f"{slo:g} s"
        if demand is not None
        else "spec.replicas changed"
    )
    if new == 0:
        return Action("ScaledToZero", f"spec.scaling: {current} -> 0 slices after no traffic; {why}", False)
    reason = "AutoscaledUp" if new > current else "AutoscaledDown"
    return Action(reason, f"spec.scaling: {_plural(current)} -> {new}; {why}", False)
