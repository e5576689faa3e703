"""Whether a newly evaluated status is worth a write (pure).

A status write is an etcd write and a watch event for every client of the model. It is worth it when
something a person or a controller acts on changed: a condition's status, reason or (for the
conditions that do not carry live figures) message, the phase, the generation observed, placement,
mesh, endpoint, the cost and latency runs and what the cost action put in force, or a figure that
moved past ``FIGURE_TOLERANCE``. Figures that only drift are refreshed at most once per ``refresh``
(the operator passes the cost window), so the status never shows figures older than that; the time
series itself lives in Prometheus (the sidecars' exposition), not in etcd.
"""

import math
from datetime import datetime, timedelta
from typing import Any

from datajax_operator.api.constants import COST_CEILING_BREACHED, LATENCY_SLO_BREACHED, METRICS_AVAILABLE
from datajax_operator.api.status import DataJaxModelStatus, MetricsStatus

FIGURE_TOLERANCE = 0.05
"""A figure that moved by at least this fraction of its stored value is worth a write."""

LIVE_MESSAGES = frozenset({COST_CEILING_BREACHED, LATENCY_SLO_BREACHED, METRICS_AVAILABLE})
"""Conditions whose message quotes live figures: a changed message alone is not worth a write."""


def _conditions(status: DataJaxModelStatus) -> list[tuple[Any, ...]]:
    return [
        (
            c.type,
            c.status,
            c.reason,
            None if c.type in LIVE_MESSAGES else c.message,
            c.last_transition_time,
            c.observed_generation,
        )
        for c in status.conditions
    ]


def _moved(before: float | None, after: float | None) -> bool:
    if before is None or after is None:
        return (before is None) != (after is None)
    if before == after:
        return False
    scale = max(abs(before), abs(after))
    return math.isinf(scale) or abs(after - before) >= FIGURE_TOLERANCE * scale


def _figures_moved(before: MetricsStatus | None, after: MetricsStatus | None) -> bool:
    if before is None or after is None:
        return (before is None) != (after is None)
    fields = [name for name in MetricsStatus.model_fields if name != "sampled_at"]
    return any(_moved(getattr(before, name), getattr(after, name)) for name in fields)


def _material(status: DataJaxModelStatus) -> dict[str, Any]:
    return status.model_dump(exclude={"conditions", "metrics"}) | {"conditions": _conditions(status)}


def worth_writing(
    previous: DataJaxModelStatus | None, status: DataJaxModelStatus, now: datetime, refresh: timedelta
) -> bool:
    """Whether ``status`` should replace the stored ``previous`` (see the module's rules)."""
    if previous is None:
        return True
    if _material(previous) != _material(status) or _figures_moved(previous.metrics, status.metrics):
        return True
    if status.metrics is None or status.metrics == previous.metrics:
        return False
    sampled = previous.metrics.sampled_at if previous.metrics is not None else None
    return sampled is None or now - sampled >= refresh
