"""How many tokens/s one slice serves with p95 at the SLO, learned from the slices' own figures.

Latency model. A serving slice behaves like a queue: at a load x (tokens/s per slice) against a
saturation rate c, everything is stretched by 1 / (1 - x/c), so p95(x) = p0 / (1 - x/c) and

    1 / p95 = 1/p0 - x / (p0 c)

is a straight line in x. Each observation pass that has figures gives one point (x, 1/p95); a least
squares line through them, with older points forgotten geometrically (`DECAY` per sample), gives the
load at which 1/p95 = 1/SLO: the slice's capacity at the SLO. Only the sums of the weighted points are
kept (in status, so a restarted operator resumes the fit).

Seed. Before the model has served, the capacity is the seed: the roofline's tokens/s times its
efficiency (`plan.roofline`). From the first point on, the line is fitted through the points and one
anchor of weight ANCHOR_WEIGHT that never decays: (0, 1 / (UNLOADED_SHARE x SLO)), an unloaded p95 at
a share of the SLO. The anchor gives a slope to points that all sit at one load (as an autoscaler
holding the load steady produces); points spread over a range soon outweigh it. If the real unloaded
p95 is above that share, the first estimates are low: more slices than needed, the SLO's side of the
error. The estimate never exceeds the roofline.
"""

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

DECAY: Final = 0.85
"""Weight left to the older points when a new one is taken (about 7 points of memory)."""
SPAN: Final = 0.1
"""Points whose loads spread less than this share of their mean say nothing about light load."""
ANCHOR_WEIGHT: Final = 0.5
"""Weight of the anchor point (0, 1 / (UNLOADED_SHARE x SLO)); it never decays."""
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


def _unreachable(state: FitState, target: float) -> bool:
    """The points alone, when they span a range of loads, put p95 above the SLO even at no load:
    no number of slices meets it (the anchor, an assumption, must not hide that)."""
    w, sx, sy = state.weight, state.sum_x, state.sum_y
    spread = w * state.sum_xx - sx * sx
    mean_x = sx / w
    if spread <= (SPAN * mean_x * w) ** 2:
        return False
    slope = (w * state.sum_xy - sx * sy) / spread
    return (sy - slope * sx) / w <= target


def capacity_at_slo(state: FitState, slo: float, seed: float, ceiling: float) -> float:
    """Tokens/s per slice at which the fitted p95 reaches `slo`, within [0, ceiling] (the roofline).

    0 means even an idle slice misses the SLO (the fitted p95 at light load is above it)."""
    if state.weight <= 0:
        return max(0.0, min(seed, ceiling))
    if _unreachable(state, 1.0 / slo):
        return 0.0
    anchor = 1.0 / (UNLOADED_SHARE * slo)
    w = state.weight + ANCHOR_WEIGHT
    sx, sy = state.sum_x, state.sum_y + ANCHOR_WEIGHT * anchor
    spread = w * state.sum_xx - sx * sx
    covariance = w * state.sum_xy - sx * sy
    slope = covariance / spread if spread > 0 else 0.0
    intercept = (sy - slope * sx) / w
    target = 1.0 / slo
    if not math.isfinite(slope) or slope >= 0:  # no evidence of a limit: the seed stands
        return max(0.0, min(max(seed, state.sum_x / state.weight), ceiling))
    if intercept <= target:
        return 0.0
    return max(0.0, min((target - intercept) / slope, ceiling))
