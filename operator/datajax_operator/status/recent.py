"""What the judgement remembers between passes beyond the status: each slice's last good figures, and
when each run was last fed a judgeable sample.

Kept out of the status on purpose: it changes at every pass, and the status changes only when
something a person or a controller acts on changes (DESIGN §2); the time series lives in Prometheus.
It is plain data passed in and returned by the pure ``judge``: the operator holds one per model in
memory, ``replay`` threads it through a timeline. Losing it (an operator restart) costs little: a
slice that fails its first scrape after a restart counts as unread (billed at its plan price, its
traffic unknown), and a gap in the figures is counted from the restart.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from datajax_operator.status.observations import SidecarFigures, SidecarScrape


@dataclass(frozen=True)
class Remembered:
    """A slice's last good figures and when they were scraped."""

    figures: SidecarFigures
    at: datetime


@dataclass(frozen=True)
class Recent:
    """The memory of one model's judgement (empty for a new model or after a restart)."""

    slices: Mapping[str, Remembered] = field(default_factory=dict)
    """Endpoint -> last good figures, for the endpoints listed at the last pass."""
    judged_at: Mapping[str, datetime] = field(default_factory=dict)
    """Run name (``cost``, ``latency``) -> the last pass that gave it a judgeable sample; a gap in
    the figures is measured from there."""


@dataclass(frozen=True)
class SliceView:
    """One listed sidecar as the judgement sees it in this pass."""

    endpoint: str
    figures: SidecarFigures | None
    """This pass's figures, else the last good ones if younger than the carry age, else None."""
    carried: bool
    error: str | None


def carry(
    sidecars: Sequence[SidecarScrape], recent: Recent, now: datetime, max_age: timedelta
) -> tuple[tuple[SliceView, ...], dict[str, Remembered]]:
    """Each listed sidecar's figures for this pass: a failed scrape takes the slice's last good figures
    while they are at most ``max_age`` old (a sidecar's figures are rates over its own window, so a
    few intervals' old figures still describe the slice). Returns the views and the memory to keep
    (only endpoints still listed: a replaced pod's figures are dropped with it)."""
    views: list[SliceView] = []
    kept: dict[str, Remembered] = {}
    for scrape in sidecars:
        if scrape.figures is not None:
            kept[scrape.endpoint] = Remembered(scrape.figures, now)
            views.append(SliceView(scrape.endpoint, scrape.figures, carried=False, error=None))
            continue
        last = recent.slices.get(scrape.endpoint)
        if last is not None and now - last.at <= max_age:
            kept[scrape.endpoint] = last
            views.append(SliceView(scrape.endpoint, last.figures, carried=True, error=scrape.error))
        else:
            views.append(SliceView(scrape.endpoint, None, carried=False, error=scrape.error))
    return tuple(views), kept
