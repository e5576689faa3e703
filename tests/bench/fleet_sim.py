"""A trace-driven fleet simulator: the same demand served under three replica policies, side by side.

What is simulated, every `STEP` seconds (the operator's observation interval):
- demand: a trace gives the offered tokens/s (diurnal, bursty, step), split evenly over the slices
  that are up, as the Service does;
- each slice behaves as the demo's traffic model (`demo.traffic`): requests of its `RequestMix`, served
  with queue, prefill and inter-token times stretched by 1 / (1 - utilisation) (capped), so p95 grows
  with load per slice; a slice serves at most `SERVE_LIMIT` of its saturation rate and the rest of the
  offered tokens are not served (lost: timeouts, retries elsewhere);
- latency: `draw_request` per sampled request (a few hundred per step, seeded), p95 over the window;
- new slices are billed from the moment they are asked for and serve after `COLD_START` (a warm XLA
  cache); removed slices stop at once;
- the sidecars report, per slice, the figures over the last cost window (a sliding window, as the real
  sidecar); vLLM's `num_requests_waiting` gauge is the traffic model's Little's-law value.

Policies:
- `autoscaler`: the operator's own pure decision (`status.autoscale.decide_scale`), fed the sidecars'
  figures and its previous status, exactly as the reconcile does;
- `hpa`: Kubernetes' HPA algorithm on the average `vllm:num_requests_waiting` per ready pod: desired =
  ceil(ready x average / target), a 10 % tolerance, scale-up limited to max(2x, +4) per pass, the
  largest recommendation of the last 5 minutes on the way down (the HPA's defaults); the target is
  swept and the best-complying one reported;
- `fixed`: the fewest slices that meet the SLO at the trace's peak (provisioned for the peak).

Judged per tumbling cost window: p95 <= SLO, $/Mtok <= ceiling (on total tokens served), both, and
whether the window was feasible at all (some replica count within [min, max] meets both at that
window's demand, with the slice's true capacity at the SLO, measured here by bisection).
"""

from __future__ import annotations

import functools
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from datajax_devtools.demo.traffic import RequestMix, SliceModel, draw_request, expected_gauges
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.api.status import DataJaxModelStatus
from datajax_operator.api.tpu import CATALOG, topology_chips
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan
from datajax_operator.status.autoscale import decide_scale
from datajax_operator.status.observations import SidecarFigures, SidecarScrape

STEP = 30.0
"""Seconds between passes (the operator's default observe interval)."""
COLD_START = 180.0
"""Seconds from asking for a slice to its serving: 1-3 minutes with a warm XLA cache (DESIGN §4)."""
SERVE_LIMIT = 0.98
SAMPLES_PER_STEP = 120
"""Requests drawn per step to estimate latency (the served tokens are counted exactly)."""
T0 = datetime(2026, 12, 1, tzinfo=UTC)
V6E_USD_PER_CHIP_HOUR = CATALOG["v6e"].prices["on-demand"]
"""The TPU catalog's v6e on-demand list price (api/tpu_catalog.json names its source)."""


@dataclass(frozen=True)
class Scenario:
    """The model, its bounds and its hardware."""

    slo_seconds: float = 3.0
    ceiling: float = 1.0
    window_seconds: float = 120.0
    min_replicas: int = 1
    max_replicas: int = 20
    slice_usd_per_hour: float = topology_chips("2x4") * V6E_USD_PER_CHIP_HOUR  # v6e 2x4 on-demand
    mix: RequestMix = field(default_factory=RequestMix)
    slice: SliceModel = field(default_factory=SliceModel)

    def document(self, replicas: int) -> dict[str, Any]:
        """The DataJaxModel the autoscaler runs for (Llama 3.1 8B on v6e 2x4, as examples/), created
        with `replicas` slices."""
        return {
            "apiVersion": "datajax.dev/v1alpha1",
            "kind": "DataJaxModel",
            "metadata": {"name": "llama3-8b", "namespace": "sim", "generation": 1},
            "spec": {
                "model": {
                    "name": "meta-llama/Llama-3.1-8B-Instruct",
                    "parametersBillions": 8,
                    "dtype": "bfloat16",
                    "numLayers": 32,
                    "kvHeads": 8,
                    "headDim": 128,
                    "maxModelLen": 8192,
                },
                "tpu": {"generation": "v6e", "topology": "2x4"},
                "replicas": replicas,
                "cost": {
                    "ceilingUSDPerMillionTokens": self.ceiling,
                    "window": f"{int(self.window_seconds)}s",
                },
                "slo": {"p95LatencySeconds": self.slo_seconds},
                "scaling": {
                    "minReplicas": self.min_replicas,
                    "maxReplicas": self.max_replicas,
                    "scaleDownStabilization": "5m",
                },
            },
        }

    @property
    def breakeven_per_slice(self) -> float:
        return self.slice_usd_per_hour * 1e6 / (3600 * self.ceiling)


Trace = Callable[[float], float]
"""Seconds since the start -> offered tokens/s."""


def diurnal(peak: float, trough: float, hours: float = 24.0) -> tuple[Trace, float]:
    """One day: a cosine from the trough at midnight to the peak at noon."""

    def rate(t: float) -> float:
        return trough + (peak - trough) * (1 - math.cos(2 * math.pi * t / 86_400)) / 2

    return rate, hours * 3600


def bursty(base: float, seed: int = 3, hours: float = 12.0) -> tuple[Trace, float]:
    """A steady base with bursts: about one an hour, 1.6-2.6 times the base, 5-20 minutes long."""
    rnd = random.Random(seed)
    bursts: list[tuple[float, float, float]] = []
    t = rnd.expovariate(1 / 3600)
    while t < hours * 3600:
        bursts.append((t, t + rnd.uniform(300, 1200), rnd.uniform(1.6, 2.6)))
        t += rnd.expovariate(1 / 3600)

    def rate(now: float) -> float:
        factor = max((f for start, end, f in bursts if start <= now < end), default=1.0)
        return base * factor

    return rate, hours * 3600


def steps(levels: Sequence[tuple[float, float]]) -> tuple[Trace, float]:
    """(hours, tokens/s) levels one after the other."""
    edges: list[tuple[float, float]] = []
    t = 0.0
    for hours, level in levels:
        t += hours * 3600
        edges.append((t, level))

    def rate(now: float) -> float:
        return next((level for end, level in edges if now < end), edges[-1][1])

    return rate, t


def p95(values: Sequence[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


@functools.cache
def capacity_at_slo(scenario: Scenario, seed: int = 11) -> float:
    """The true tokens/s per slice at which p95 equals the SLO, by bisection on the traffic model."""
    rnd = random.Random(seed)
    low, high = 0.0, scenario.slice.capacity_tokens_per_second
    for _ in range(30):
        mid = (low + high) / 2
        rho = mid / scenario.slice.capacity_tokens_per_second
        draws = [draw_request(scenario.mix, scenario.slice, rho, rnd).e2e for _ in range(4000)]
        if p95(draws) <= scenario.slo_seconds:
            low = mid
        else:
            high = mid
    return low


@dataclass
class Fleet:
    """Slices asked for (billed) and when each serves."""

    ready_at: list[float] = field(default_factory=list)

    def desired(self) -> int:
        return len(self.ready_at)

    def ready(self, now: float) -> int:
        return sum(1 for t in self.ready_at if t <= now)

    def scale_to(self, count: int, now: float) -> None:
        if count > len(self.ready_at):
            self.ready_at += [now + COLD_START] * (count - len(self.ready_at))
        elif count < len(self.ready_at):
            self.ready_at.sort()  # the Deployment removes slices still starting first
            del self.ready_at[count:]


Policy = Callable[["Observed"], int]


@dataclass(frozen=True)
class Observed:
    """What a policy sees at a pass."""

    now: float
    desired: int
    ready: int
    sidecars: tuple[SidecarScrape, ...]
    waiting_per_pod: float


def autoscaler(scenario: Scenario, initial: int) -> Policy:
    """The operator's decision, with its status carried from pass to pass as the reconcile does."""
    model = DataJaxModel.model_validate(scenario.document(initial))
    plan = make_plan(model, OperatorConfig(prices={"v6e": {"on-demand": V6E_USD_PER_CHIP_HOUR}}))
    assert plan.capacity is not None and plan.capacity.roofline is not None
    roof = plan.capacity.roofline
    state: dict[str, DataJaxModelStatus | None] = {"status": None}

    def decide(seen: Observed) -> int:
        previous = state["status"]
        if previous is not None:
            previous = previous.model_copy(
                update={"replicas": seen.desired, "available_replicas": seen.ready}
            )
        decision = decide_scale(
            model.spec,
            1,
            previous,
            seen.sidecars,
            T0 + timedelta(seconds=seen.now),
            roof=roof,
            slice_usd_per_hour=scenario.slice_usd_per_hour,
        )
        state["status"] = DataJaxModelStatus(
            replicas=decision.replicas, available_replicas=seen.ready, scaling=decision.status
        )
        return decision.replicas

    return decide


def hpa(scenario: Scenario, target: float) -> Policy:
    """The HPA algorithm (autoscaling/v2 defaults) on vllm:num_requests_waiting, AverageValue target."""
    history: deque[tuple[float, int]] = deque()

    def decide(seen: Observed) -> int:
        if seen.ready == 0:
            return max(seen.desired, scenario.min_replicas)
        ratio = seen.waiting_per_pod / target
        recommended = seen.desired if abs(ratio - 1) <= 0.1 else math.ceil(seen.ready * ratio)
        recommended = max(scenario.min_replicas, min(scenario.max_replicas, recommended))
        history.append((seen.now, recommended))
        while history and history[0][0] < seen.now - 300:
            history.popleft()
        if recommended > seen.desired:
            return min(recommended, max(2 * seen.desired, seen.desired + 4))
        return max(r for _, r in history)  # scale-down stabilisation: the largest of the last 5 min

    return decide


def fixed(count: int) -> Policy:
    return lambda seen: count


@dataclass
class WindowTally:
    offered: float = 0.0
    served: float = 0.0
    usd: float = 0.0
    latencies: list[float] = field(default_factory=list)


def simulate(
    scenario: Scenario,
    trace: Trace,
    seconds: float,
    policy: Policy,
    *,
    initial: int,
    seed: int = 7,
    log: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Run one policy over one trace from `initial` serving slices; returns the per-window verdicts and
    the totals (and appends one row per window to `log` when given)."""
    rnd = random.Random(seed)
    noise = random.Random(seed + 1)
    mix, slc = scenario.mix, scenario.slice
    mean_tokens = mix.mean_tokens()
    output_share = mix.mean_output_tokens() / mean_tokens
    fleet = Fleet()
    fleet.scale_to(initial, -COLD_START)  # up and serving at the start
    per_window = int(scenario.window_seconds / STEP)
    recent: deque[tuple[float, float, list[float]]] = deque(maxlen=per_window)  # per slice, per step
    windows: list[WindowTally] = []
    tally = WindowTally()
    events = 0
    steps_run = int(seconds / STEP)
    for i in range(steps_run):
        now = i * STEP
        offered = trace(now) * noise.uniform(0.95, 1.05)
        ready = fleet.ready(now)
        per_slice_offered = offered / ready if ready else math.inf
        served_per_slice = (
            min(per_slice_offered, SERVE_LIMIT * slc.capacity_tokens_per_second) if ready else 0.0
        )
        rho = served_per_slice / slc.capacity_tokens_per_second
        latencies = (
            [draw_request(mix, slc, rho, rnd).e2e for _ in range(SAMPLES_PER_STEP)]
            if ready and offered > 0
            else []
        )
        recent.append((served_per_slice, served_per_slice / mean_tokens, latencies))
        tally.offered += offered * STEP
        tally.served += served_per_slice * ready * STEP
        tally.usd += fleet.desired() * scenario.slice_usd_per_hour * STEP / 3600
        if ready:
            tally.latencies += latencies
        else:
            tally.latencies += [math.inf] * SAMPLES_PER_STEP if offered > 0 else []
        if (i + 1) % per_window == 0:
            if log is not None:
                log.append(
                    {
                        "t": now,
                        "demand": tally.offered / scenario.window_seconds,
                        "slices": fleet.desired(),
                        "ready": ready,
                        "p95": p95(tally.latencies),
                        "usd_per_mtok": tally.usd / (tally.served / 1e6) if tally.served else math.inf,
                    }
                )
            windows.append(tally)
            tally = WindowTally()
        # the pass at the end of this step: sidecars report their sliding window
        window_tokens = sum(t for t, _, _ in recent) / len(recent)
        window_rps = sum(r for _, r, _ in recent) / len(recent)
        window_p95 = p95([x for _, _, lat in recent for x in lat])
        figures = SidecarFigures(
            usd_per_hour=scenario.slice_usd_per_hour,
            prompt_tokens_per_second=window_tokens * (1 - output_share),
            generation_tokens_per_second=window_tokens * output_share,
            prefix_cache_hit_ratio=math.nan,
            p95_e2e_latency_seconds=window_p95,
            p95_ttft_seconds=math.nan,
            window_seconds=len(recent) * STEP,
            upstream_up=True,
            requests_per_second=window_rps,
        )
        waiting = expected_gauges(mix, slc, served_per_slice / mean_tokens).waiting if ready else 0.0
        seen = Observed(
            now=now + STEP,
            desired=fleet.desired(),
            ready=fleet.ready(now + STEP),
            sidecars=tuple(SidecarScrape(f"10.0.0.{k}:9400", figures) for k in range(fleet.ready(now))),
            waiting_per_pod=waiting,
        )
        wanted = policy(seen)
        if wanted != fleet.desired():
            events += 1
            fleet.scale_to(wanted, now + STEP)
    return _report(scenario, windows, events)


def _report(scenario: Scenario, windows: list[WindowTally], events: int) -> dict[str, Any]:
    true_capacity = capacity_at_slo(scenario)
    verdicts = []
    for w in windows:
        seconds = scenario.window_seconds
        demand = w.offered / seconds
        latency = p95(w.latencies)
        mtok = w.usd / (w.served / 1e6) if w.served > 0 else math.inf
        slo_ok = latency <= scenario.slo_seconds if w.latencies else True
        cost_ok = mtok <= scenario.ceiling
        need = max(math.ceil(demand / true_capacity), scenario.min_replicas)
        allowed = min(math.floor(demand / scenario.breakeven_per_slice), scenario.max_replicas)
        verdicts.append({"slo": slo_ok, "cost": cost_ok, "feasible": need <= allowed})
    feasible = [v for v in verdicts if v["feasible"]]
    return {
        "windows": len(verdicts),
        "feasible_windows": len(feasible),
        "both_in_feasible": _share(feasible, lambda v: v["slo"] and v["cost"]),
        "both_all": _share(verdicts, lambda v: v["slo"] and v["cost"]),
        "slo_all": _share(verdicts, lambda v: v["slo"]),
        "cost_all": _share(verdicts, lambda v: v["cost"]),
        "usd": round(sum(w.usd for w in windows), 2),
        "tokens_served_millions": round(sum(w.served for w in windows) / 1e6, 1),
        "tokens_offered_millions": round(sum(w.offered for w in windows) / 1e6, 1),
        "scale_events": events,
        "true_capacity_at_slo": round(true_capacity, 1),
    }


def _share(items: list[dict[str, bool]], test: Callable[[dict[str, bool]], bool]) -> float:
    return round(sum(1 for v in items if test(v)) / len(items), 4) if items else math.nan
