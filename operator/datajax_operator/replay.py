"""`datajax-operator replay`: the operator's judgement run offline over a recorded timeline.

A user's way to try a ceiling, a window and an action on their own traffic before enabling
``Suspend``, as ``promtool test rules`` is for alert rules. There is no second implementation: every
pass runs the operator's own pure ``decide`` and ``conclude`` (plan, judgement with its memory,
rendering, status, write policy, Events) on the figures of one timeline line; what the operator
would have stored is fed back as the next pass's previous status, as the API server would.

What replay assumes, where the operator would look at the cluster instead: the workload always runs
the replicas decided (every slice available); the slices are those the timeline lists, in its order
(a ScaleDown shows as a decision, the recorded traffic does not change with it); the observation
interval is the timeline's own (the median step between its lines), which sets how long a slice's
last figures are carried over its failed scrapes (``decide.CARRIED_INTERVALS`` intervals).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from datajax_operator.decide import conclude, decide
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.render.names import base_name
from datajax_operator.status.observations import (
    Observations,
    SidecarFigures,
    SidecarScrape,
    WorkloadObservation,
)
from datajax_operator.status.recent import Recent

ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
"""The clock of the replay: t = 0 of the timeline (only differences matter)."""

RECOMPUTED_KEYS: Final = ("usd_per_million_tokens", "breakeven_tokens_per_second")
"""Analyze keys the judgement does not take from a slice: it sums the slices' $/hour and tokens itself."""

FIGURE_KEYS: Final = (
    *(
        f.name
        for f in dataclasses.fields(SidecarFigures)
        if f.type in (float, "float") and f.name != "requests_per_second"
    ),
    "requests",
    *RECOMPUTED_KEYS,
)
"""The `datajax-sidecar analyze -o json` keys (DESIGN §6): a slice's figures carry the analyze names,
except requests per second, which is `requests` over the window; plus the keys recomputed for the
model. The runtime's `window.ANALYZE_KEYS` is the list of record; a unit test holds both to one set."""


class TimelineError(ValueError):
    """A timeline line that cannot be replayed; the message names the line and the field."""


@dataclass(frozen=True)
class Pass:
    """One line of the timeline."""

    t: float
    slices: tuple[SidecarFigures | None, ...]


def _number(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TimelineError(f"{where}: expected a number or null, got {json.dumps(value)}")
    return float(value)


def _figures(document: Any, where: str) -> SidecarFigures | None:
    if document is None:
        return None
    if not isinstance(document, dict):
        raise TimelineError(f"{where}: expected the analyze JSON object or null (a failed scrape)")
    unknown = sorted(set(document) - set(FIGURE_KEYS))
    if unknown:
        raise TimelineError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(FIGURE_KEYS)}"
        )
    values = {key: _number(document.get(key), f"{where}.{key}") for key in FIGURE_KEYS}
    if math.isnan(values["usd_per_hour"]):
        return None  # a sidecar that exports no price is read as a failed scrape by the operator too
    # Only float fields (FIGURE_KEYS), named as the analyze keys name them.
    read: dict[str, Any] = {k: v for k, v in values.items() if k not in (*RECOMPUTED_KEYS, "requests")}
    window = read["window_seconds"]
    read["window_seconds"] = 0.0 if math.isnan(window) else window
    per_second = values["requests"] / window if window > 0 else math.nan
    return SidecarFigures(**read, requests_per_second=per_second, upstream_up=True)


def read_timeline(lines: Iterable[str], source: str = "timeline") -> list[Pass]:
    """Parse the JSONL timeline; blank lines are skipped; ``t`` must increase."""
    passes: list[Pass] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            document = json.loads(line)
        except json.JSONDecodeError as err:
            raise TimelineError(f"{where}: not JSON ({err})") from None
        if not isinstance(document, dict) or set(document) != {"t", "slices"}:
            raise TimelineError(f'{where}: expected {{"t": seconds, "slices": [FIGURES | null, ...]}}')
        t = _number(document["t"], f"{where}: t")
        if math.isnan(t) or math.isinf(t) or t < 0:
            raise TimelineError(f"{where}: t must be a number of seconds >= 0")
        if passes and t <= passes[-1].t:
            raise TimelineError(f"{where}: t {t:g} does not increase (previous line: {passes[-1].t:g})")
        slices = document["slices"]
        if not isinstance(slices, list):
            raise TimelineError(f"{where}: slices must be a list (one entry per slice)")
        passes.append(Pass(t, tuple(_figures(s, f"{where}: slices[{i}]") for i, s in enumerate(slices))))
    if not passes:
        raise TimelineError(f"{source}: no line to replay")
    return passes


def interval_seconds(passes: Sequence[Pass], default: float) -> float:
    """The timeline's own observation interval: the median step between its lines."""
    steps = [b.t - a.t for a, b in itertools.pairwise(passes)]
    return statistics.median(steps) if steps else default


def _with_interval(config: OperatorConfig, seconds: float) -> OperatorConfig:
    whole = max(1, math.ceil(seconds))
    return OperatorConfig.model_validate({**config.model_dump(by_alias=True), "observeInterval": f"{whole}s"})


def replay(model: dict[str, Any], passes: Sequence[Pass], config: OperatorConfig) -> list[dict[str, Any]]:
    """The timeline of what the operator decides: per pass, the conditions, the replicas and the
    reasons of the Events it posts. ``model`` is the DataJaxModel document (it is not modified)."""
    config = _with_interval(config, interval_seconds(passes, config.observe_interval_seconds))
    meta = model.get("metadata") or {}
    raw: dict[str, Any] = {
        **model,
        "metadata": {
            **meta,
            "namespace": meta.get("namespace") or "default",
            "uid": "replay",
            "generation": 1,
        },
    }
    raw.pop("status", None)
    recent = Recent()
    out: list[dict[str, Any]] = []
    for step in passes:
        now = ORIGIN + timedelta(seconds=step.t)
        scrapes = tuple(
            SidecarScrape(f"slice-{i}", figures, None if figures is not None else "failed scrape (null)")
            for i, figures in enumerate(step.slices)
        )
        decision = decide(raw, config, scrapes, now, wave_spec=None, recent=recent)
        replicas = decision.replicas
        workload = (
            None
            if replicas is None
            else WorkloadObservation("Deployment", base_name(str(meta.get("name", ""))), replicas, replicas)
        )
        conclusion = conclude(raw, decision, Observations(workload=workload, sidecars=scrapes), now)
        if conclusion.write:
            raw["status"] = conclusion.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        if decision.judgement is not None:
            recent = decision.judgement.recent
        out.append(
            {
                "t": step.t,
                "conditions": {c.type: c.status for c in conclusion.status.conditions},
                "replicas": replicas,
                "events": [n.reason for n in conclusion.notices],
            }
        )
    return out


def table(timeline: Sequence[dict[str, Any]]) -> str:
    """The timeline as aligned text: one row per pass, one column per condition type."""
    types: list[str] = []
    for row in timeline:
        types += [t for t in row["conditions"] if t not in types]
    header = ["T", "REPLICAS", *(t.upper() for t in types), "EVENTS"]
    rows = [
        [
            f"{row['t']:g}",
            "-" if row["replicas"] is None else str(row["replicas"]),
            *(row["conditions"].get(t, "-") for t in types),
            ",".join(row["events"]) or "-",
        ]
        for row in timeline
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in [header, *rows]
    )
