"""A stored model (and the Events about it) as what an on-call engineer asks of it: a pure reading.

``datajax-operator status`` fetches the model through ``kube`` and hands the raw documents here; the
text screen (``screen``) and the JSON output both come from the :class:`ModelSummary` built here, so
the two can never disagree about a figure, an unknown reason or the verdict.

Reading is lenient on purpose: a model whose spec an older or newer operator wrote is still shown
(an unreadable spec section leaves its figure "unknown" rather than failing the screen), and a
status the API model cannot read is reported as such, with the rest of the screen intact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from datajax_operator.api.constants import (
    COST_CEILING_BREACHED,
    LATENCY_SLO_BREACHED,
    METRICS_AVAILABLE,
    READY,
)
from datajax_operator.api.spec import SLO, Cost
from datajax_operator.api.status import Condition, DataJaxModelStatus, MetricsStatus, PlannedCostStatus

_Section = TypeVar("_Section", Cost, SLO)

BREACH_CONDITIONS = (COST_CEILING_BREACHED, LATENCY_SLO_BREACHED)
"""Conditions whose True status means the model is serving outside what its owner asked for."""

NOT_REPORTED = "NotReported"
"""Reason shown for a figure nobody has written and no condition explains (an operator without
metrics, or a status written before the first scrape)."""


def parse_time(value: object) -> datetime | None:
    """metav1.Time or MicroTime (RFC 3339, 'Z' or an offset) as an aware datetime; None if absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class EventLine:
    """One Event about the model, whichever API wrote it (core/v1 or events.k8s.io/v1)."""

    type: str
    reason: str
    message: str
    count: int
    last_seen: datetime | None
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "count": self.count,
            "lastSeen": _stamp(self.last_seen),
            "from": self.source,
        }


def _first(*values: object) -> Any:
    return next((v for v in values if v not in (None, "", {})), None)


def event_line(event: dict[str, Any]) -> EventLine:
    """An Event in either shape: core/v1 (message, count, lastTimestamp, source) or events.k8s.io/v1
    (note, series, deprecated* fields, reportingController). The API server stores both in one
    resource, so a list through either API returns Events written through the other; this reads the
    union of their field names."""
    series = event.get("series") or {}
    return EventLine(
        type=str(event.get("type") or "Normal"),
        reason=str(event.get("reason") or ""),
        message=" ".join(str(_first(event.get("message"), event.get("note")) or "").split()),
        count=int(_first(series.get("count"), event.get("count"), event.get("deprecatedCount")) or 1),
        last_seen=parse_time(
            _first(
                series.get("lastObservedTime"),
                event.get("lastTimestamp"),
                event.get("deprecatedLastTimestamp"),
                event.get("eventTime"),
                event.get("firstTimestamp"),
                (event.get("metadata") or {}).get("creationTimestamp"),
            )
        ),
        source=str(
            _first(
                event.get("reportingController"),
                event.get("reportingComponent"),
                (event.get("source") or {}).get("component"),
                (event.get("deprecatedSource") or {}).get("component"),
            )
            or ""
        ),
    )


def recent_events(events: list[dict[str, Any]], limit: int) -> list[EventLine]:
    """The ``limit`` most recent Events, oldest first (as ``kubectl describe`` lists them)."""
    lines = [event_line(e) for e in events]
    lines.sort(key=lambda e: e.last_seen.timestamp() if e.last_seen is not None else float("-inf"))
    return lines[-limit:] if limit > 0 else []


@dataclass(frozen=True)
class Figure:
    """A measured figure, or None with the reason it is unknown."""

    value: float | None
    unknown_reason: str | None = None


def _stamp(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    section = (raw.get("spec") or {}).get(key)
    return section if isinstance(section, dict) else {}


def _lenient(model: type[_Section], data: dict[str, Any]) -> _Section | None:
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


@dataclass(frozen=True)
class ModelSummary:
    """Everything the status screen shows about one model, read from its stored document."""

    namespace: str
    name: str
    generation: int | None
    created: datetime | None
    replicas: int | None
    cost: Cost | None
    """spec.cost with its defaults; None when the stored section cannot be read."""
    slo: SLO | None
    status: DataJaxModelStatus
    status_error: str | None
    """Why the stored status could not be read (then ``status`` is empty)."""

    @classmethod
    def from_document(cls, raw: dict[str, Any]) -> ModelSummary:
        meta = raw.get("metadata") or {}
        status_error = None
        try:
            status = DataJaxModelStatus.model_validate(raw.get("status") or {})
        except ValidationError as err:
            status, status_error = DataJaxModelStatus(), f"{err.error_count()} unreadable field(s)"
        replicas = (raw.get("spec") or {}).get("replicas", 1)
        slo_section = _section(raw, "slo")
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            generation=meta.get("generation"),
            created=parse_time(meta.get("creationTimestamp")),
            replicas=replicas if isinstance(replicas, int) else None,
            cost=_lenient(Cost, _section(raw, "cost")),
            slo=_lenient(SLO, slo_section) if slo_section else None,
            status=status,
            status_error=status_error,
        )

    # -- conditions ------------------------------------------------------------------------------

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.status.conditions if c.type == type_), None)

    @property
    def ready(self) -> bool:
        ready = self.condition(READY)
        return ready is not None and ready.status == "True"

    @property
    def breaches(self) -> list[str]:
        """The breach conditions that are True."""
        return [t for t in BREACH_CONDITIONS if (c := self.condition(t)) is not None and c.status == "True"]

    @property
    def healthy(self) -> bool:
        """Ready and not breaching: what exit code 0 of ``datajax-operator status`` promises."""
        return self.ready and not self.breaches

    @property
    def problems(self) -> list[str]:
        """Why the model is not healthy, one short phrase each (empty when healthy)."""
        found = []
        if not self.ready:
            ready = self.condition(READY)
            found.append(f"not Ready ({ready.reason})" if ready is not None else "not Ready (no status yet)")
        found.extend(self.breaches)
        return found

    # -- figures ---------------------------------------------------------------------------------

    @property
    def metrics(self) -> MetricsStatus:
        return self.status.metrics or MetricsStatus()

    @property
    def planned(self) -> PlannedCostStatus | None:
        """The plan's $/hour and break-even, shown (marked as planned) while no sidecar has measured
        the model's $/hour: a new model's cost is known from its first pass."""
        return self.status.planned_cost if self.metrics.cost_usd_per_hour is None else None

    def _unknown_reason(self, judged_by: str) -> str:
        """Why a figure is absent: the judging condition's Unknown reason (InsufficientTraffic,
        NoMetrics), else why the sidecars were not scraped, else that nothing reported it."""
        judge = self.condition(judged_by)
        if judge is not None and judge.status == "Unknown":
            return judge.reason
        scraped = self.condition(METRICS_AVAILABLE)
        if scraped is not None and scraped.status != "True":
            return scraped.reason
        cost_judge = self.condition(COST_CEILING_BREACHED)
        if cost_judge is not None and cost_judge.status == "Unknown":
            return cost_judge.reason
        return NOT_REPORTED

    def figure(self, value: float | None, judged_by: str = COST_CEILING_BREACHED) -> Figure:
        return Figure(value) if value is not None else Figure(None, self._unknown_reason(judged_by))

    @property
    def ceiling(self) -> float | None:
        return self.cost.ceiling_usd_per_million_tokens if self.cost is not None else None

    @property
    def cost_headroom(self) -> float | None:
        """Percent of the ceiling still unspent (negative: over the ceiling)."""
        cost, ceiling = self.metrics.cost_usd_per_million_tokens, self.ceiling
        if cost is None or ceiling is None:
            return None
        return (ceiling - cost) / ceiling * 100

    @property
    def latency_headroom(self) -> float | None:
        """Percent of the p95 objective still unused (negative: slower than the objective)."""
        p95 = self.metrics.p95_latency_seconds
        if p95 is None or self.slo is None:
            return None
        return (self.slo.p95_latency_seconds - p95) / self.slo.p95_latency_seconds * 100

    def sampled_age(self, now: datetime) -> float | None:
        sampled = self.metrics.sampled_at
        return (now - sampled).total_seconds() if sampled is not None else None

    # -- machine-readable ------------------------------------------------------------------------

    def to_json(self, now: datetime, events: list[EventLine] | None = None) -> dict[str, Any]:
        """The same reading as the screen, for scripts (``-o json``)."""
        m = self.metrics
        planned = self.status.planned_cost
        status = self.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        figures: dict[str, Any] = {
            "costUSDPerMillionTokens": m.cost_usd_per_million_tokens,
            "ceilingUSDPerMillionTokens": self.ceiling,
            "costHeadroomPercent": _rounded(self.cost_headroom),
            "costUSDPerHour": m.cost_usd_per_hour,
            "breakEvenTokensPerSecond": m.break_even_tokens_per_second,
            "plannedCostUSDPerHour": planned.usd_per_hour if planned else None,
            "plannedBreakEvenTokensPerSecond": planned.break_even_tokens_per_second if planned else None,
            "tokensPerSecond": m.tokens_per_second,
            "p95LatencySeconds": m.p95_latency_seconds,
            "sloP95LatencySeconds": self.slo.p95_latency_seconds if self.slo else None,
            "latencyHeadroomPercent": _rounded(self.latency_headroom),
            "p95TTFTSeconds": m.p95_ttft_seconds,
            "prefixCacheHitRatio": m.prefix_cache_hit_ratio,
            "sampledAt": _stamp(m.sampled_at),
            "sampledAgeSeconds": _rounded(self.sampled_age(now)),
            "basis": self.cost.basis if self.cost else None,
            "window": self.cost.window if self.cost else None,
            "costUnknownReason": self.figure(m.cost_usd_per_million_tokens).unknown_reason,
            "latencyUnknownReason": self.figure(m.p95_latency_seconds, LATENCY_SLO_BREACHED).unknown_reason,
        }
        result: dict[str, Any] = {
            "namespace": self.namespace,
            "name": self.name,
            "generation": self.generation,
            "observedGeneration": self.status.observed_generation,
            "replicas": self.replicas,
            "phase": self.status.phase,
            "ready": self.ready,
            "breaches": self.breaches,
            "healthy": self.healthy,
            "problems": self.problems,
            "placement": status.get("placement"),
            "mesh": status.get("mesh"),
            "endpoint": self.status.endpoint,
            "figures": figures,
            "conditions": status.get("conditions", []),
        }
        if self.status_error is not None:
            result["statusError"] = self.status_error
        if events is not None:
            result["events"] = [e.to_json() for e in events]
        return result


def _rounded(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None
