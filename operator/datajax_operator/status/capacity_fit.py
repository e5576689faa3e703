"""How many tokens/s one slice serves with p95 at the SLO, learned from the slices' own figures.

Latency model. A serving slice behaves like a queue: at a load x (tokens/s per slice) against a
saturation rate c, everything is stretched by 1 / (1 - x/c), so p95(x) = p0 / (1 - x/c) and

    1 / p95 = 1/p0 - x / (p0 c)

is a straight line in x. Each observation pass that has figures gives one point (x, 1/p95); a least
squares line through them, with older points forgotten geometrically (`DECAY` per sample), gives the
load at which 1/p95 = 1/SLO: the slice's capacity at the SLO. Only the sums of the weighted points
(and the lowest p95 seen) are kept, in status, so a restarted operator resumes the fit.

Seed and anchor. Before the first point the capacity is the seed: the roofline's tokens/s times its
efficiency (`plan.roofline`). From the first point on, the line is fitted through the points and an
anchor of weight ANCHOR_WEIGHT that never decays at (0, 1 / lowest p95 seen): the unloaded p95 is at
most the lowest one observed, so the anchor errs on the shallow side (until some window has met the
SLO, the anchor is an assumed unloaded p95 of UNLOADED_SHARE x SLO instead). It gives a slope to points that
all sit at one load (as an autoscaler holding the load steady produces); points spread over a range
soon outweigh it.

Why shallow: near the points the line's level is theirs, so an error in the slope only matters when
the estimate extrapolates far from them. A too-shallow slope overestimates the capacity, the
autoscaler removes slices, the load per slice rises to the SLO and the new points correct the line;
a too-steep one would underestimate it, and the fleet would stay over-provisioned with nothing to
learn from. So the estimate may also never extrapolate more than TRUST beyond the load it has seen:
each step towards the SLO is a measured one. It never exceeds the roofline.
"""

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

DECAY: Final = 0.85
"""Weight left to the older points when a new one is taken (about 7 points of memory)."""
ANCHOR_WEIGHT: Final = 0.5
"""Weight of the anchor point (0, 1 / lowest p95 seen); it never decays."""
TRUST: Final = 2.0
"""The estimate is at most this many times the largest load per slice the points have seen (more than
1 / the autoscaler's headroom, or the load it plans for would never reach beyond what was seen)."""
SPAN: Final = 0.1
"""Points whose loads spread less than this share of their mean say nothing about light load."""
UNLOADED_SHARE: Final = 0.3
"""While no window has met the SLO (so the lowest p95 seen says nothing about an idle slice), the
unloaded p95 is taken to be this share of the SLO: an assumption, dropped at the first window under it."""
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
    min_p95: float | None = None
    max_load: float | None = None
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
        min_p95=p95 if state.min_p95 is None else min(state.min_p95, p95),
        max_load=load if state.max_load is None else max(state.max_load, load),
        sampled_at=now,
    )


def _unreachable(state: FitState, target: float) -> bool:
    """The points alone, when they span a range of loads, put p95 above the SLO even at no load:
    no number of slices meets it (the anchor must not hide that)."""
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
    if state.weight <= 0 or state.min_p95 is None or state.max_load is None:
        return max(0.0, min(seed, ceiling))
    target = 1.0 / slo
    if _unreachable(state, target):
        return 0.0
    # no window has met the SLO yet: the unloaded p95 is assumed at UNLOADED_SHARE of it
    anchor = 1.0 / state.min_p95 if state.min_p95 < slo else 1.0 / (UNLOADED_SHARE * slo)
    w = state.weight + ANCHOR_WEIGHT
    sx, sy = state.sum_x, state.sum_y + ANCHOR_WEIGHT * anchor
    spread = w * state.sum_xx - sx * sx
    slope = (w * state.sum_xy - sx * sy) / spread if spread > 0 else 0.0
    limit = min(TRUST * state.max_load, ceiling)
    if not math.isfinite(slope) or slope >= 0:  # no evidence of a limit yet: one trusted step up
        return max(0.0, limit)
    intercept = (sy - slope * sx) / w
    return max(0.0, min((target - intercept) / slope, limit))


def saturated_bound(load: float, state: FitState, slo: float) -> float:
    """A bound on the capacity from a window whose slices were saturated: they served about their
    limit c, and at the SLO a slice serves c x (1 - p0 / SLO), with p0 the lowest p95 seen when some
    window met the SLO, else UNLOADED_SHARE of the SLO."""
    p0 = state.min_p95 if state.min_p95 is not None and state.min_p95 < slo else UNLOADED_SHARE * slo
    return max(0.0, load * (1 - min(p0 / slo, 1.0)))
