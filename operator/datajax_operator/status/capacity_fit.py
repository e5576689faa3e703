"""How many tokens/s one slice serves with p95 at the SLO, learned from the slices' own figures.

Latency model. A serving slice behaves like a queue: at a load x (tokens/s per slice) against a
saturation rate c, everything is stretched by 1 / (1 - x/c), so p95(x) = p0 / (1 - x/c) and

    1 / p95 = 1/p0 - x / (p0 c)

is a straight line in x. Each observation pass that has figures gives one point (x, 1/p95); a least
squares line through them, with older points forgotten geometrically (`DECAY` per sample), gives the
load at which 1/p95 = 1/SLO: the slice's capacity at the SLO. Only the sums of the weighted points are
kept (in status, so a restarted operator resumes the fit).

Seed. Before the model has served, two pseudo-points of weight `PRIOR_WEIGHT` each anchor the line:
(0, 1/(UNLOADED_SHARE x SLO)), an unloaded p95 at a share of the SLO, and (seed, 1/SLO), the roofline's
capacity times its efficiency (`plan.roofline`). They never decay, so a fit on points that all sit at
one load (as an autoscaler that holds the load steady produces) still has a slope; real points soon
outweigh them. The estimate never exceeds the roofline itself.
"""

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

DECAY: Final = 0.85
"""Weight left to the older points when a new one is taken (about 7 points of memory)."""
PRIOR_WEIGHT: Final = 0.5
UNLOADED_SHARE: Final = 0.3
"""Seed's unloaded p95 as a share of the SLO (an assumption, replaced by the model's own points)."""
LEARNED_AFTER: Final = 3
"""Points after which the estimate is reported as Learned rather than Roofline."""


@dataclass(frozen=True)
class FitState:
    """Weighted sums of the points (x = load per slice, y = 1/p95)."""

    key: str
    samples: int = 0
    weight: float = 0.0
    sum_x: float = 0.0
    sum_y: float = 0.0
    sum_xx: float = 0.0
    sum_xy: float = 0.0
    sampled_at: datetime | None = None


def add_point(state: FitState, load: float, p95: float, now: datetime) -> FitState:
    """The fit with one more point (older points down-weighted by DECAY)."""
    y = 1.0 / p95
    return replace(
        state,
        samples=state.samples + 1,
        weight=state.weight * DECAY + 1.0,
        sum_x=state.sum_x * DECAY + load,
        sum_y=state.sum_y * DECAY + y,
        sum_xx=state.sum_xx * DECAY + load * load,
        sum_xy=state.sum_xy * DECAY + load * y,
        sampled_at=now,
    )


def capacity_at_slo(state: FitState, slo: float, seed: float, ceiling: float) -> float:
    """Tokens/s per slice at which the fitted p95 reaches `slo`, within [0, ceiling] (the roofline).

    0 means even an idle slice misses the SLO (the fitted unloaded p95 is above it)."""
    points = [(0.0, 1.0 / (UNLOADED_SHARE * slo)), (seed, 1.0 / slo)]
    w = state.weight + PRIOR_WEIGHT * len(points)
    sx = state.sum_x + PRIOR_WEIGHT * sum(x for x, _ in points)
    sy = state.sum_y + PRIOR_WEIGHT * sum(y for _, y in points)
    sxx = state.sum_xx + PRIOR_WEIGHT * sum(x * x for x, _ in points)
    sxy = state.sum_xy + PRIOR_WEIGHT * sum(x * y for x, y in points)
    spread = w * sxx - sx * sx
    if spread <= 0 or not math.isfinite(spread):
        return min(seed, ceiling)
    slope = (w * sxy - sx * sy) / spread
    intercept = (sy - slope * sx) / w
    target = 1.0 / slo
    if intercept <= target:
        return 0.0
    if slope >= 0:  # latency that falls with load: no evidence of a limit in the points
        return min(max(seed, state.sum_x / state.weight if state.weight else 0.0), ceiling)
    return min((target - intercept) / slope, ceiling)
