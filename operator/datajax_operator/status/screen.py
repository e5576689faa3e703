"""The text of `datajax-operator status`: summaries + Events + now -> the screen, a pure function.

Two views: one model in full (verdict, placement, mesh, endpoint, live figures against the ceiling and
the SLO, conditions, recent Events) and the fleet, one line per model. ``now`` is an argument so
ages ("12s ago") are reproducible and the screens can be checked against golden files.

Unknown figures print as an em dash followed by the reason (``InsufficientTraffic``, ``NoMetrics``,
...), never as zero: a zero would read as "free" or "instant". Until the sidecars have measured the
model's $/hour, the plan's $/hour and break-even are shown instead, marked ``(planned)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from datajax_operator.api.constants import LATENCY_SLO_BREACHED, SPEC_VALID
from datajax_operator.api.spec import duration_seconds
from datajax_operator.status.summary import EventLine, Figure, ModelSummary

DASH = "—"
PLANNED = "(planned)"
"""Marks a figure taken from the plan (the provisioned price), not measured by the sidecars."""


def age(then: datetime | None, now: datetime) -> str:
    """A duration the way kubectl prints ages: two units while they matter, one after (``45s``,
    ``3m20s``, ``25m``, ``5h10m``, ``30h``, ``3d4h``, ``40d``)."""
    if then is None:
        return DASH
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return "0s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def window_seconds(window: str) -> int | None:
    """spec.cost.window in seconds; None when the stored text is not a duration (the screen shows any
    object, valid or not)."""
    try:
        return duration_seconds(window)
    except ValueError:
        return None


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Left-aligned columns two spaces apart; the last column is never padded."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    return [
        (indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]).rstrip()
        for r in [header, *rows]
    ]


def _shown(figure: Figure, fmt: str) -> str:
    if figure.value is None:
        return f"{DASH} ({figure.unknown_reason})"
    return fmt.format(figure.value)


def _headroom(percent: float | None, limit: str) -> str:
    if percent is None:
        return ""
    return f"headroom {percent:.1f}%" if percent >= 0 else f"OVER the {limit} by {-percent:.1f}%"


# -- one model ----------------------------------------------------------------------------------


def _verdict(summary: ModelSummary) -> str:
    if summary.healthy:
        return "OK (exit 0): Ready, no breach"
    return "ATTENTION (exit 1): " + ", ".join(summary.problems)


def _generation_note(summary: ModelSummary) -> str:
    observed = summary.status.observed_generation
    if observed is None:
        return "no status yet: is the operator running and watching this namespace?"
    if summary.generation is not None and observed < summary.generation:
        return f"status describes generation {observed} of {summary.generation}: the operator is behind"
    return f"generation {summary.generation}"


def _placement(summary: ModelSummary) -> str:
    p = summary.status.placement
    if p is None:
        spec = summary.condition(SPEC_VALID)
        why = f"{spec.reason}: {spec.message}" if spec is not None and spec.status == "False" else "no plan"
        return f"{DASH} ({why})"
    replicas = f"{summary.replicas} x " if summary.replicas is not None else ""
    return (
        f"{replicas}{p.generation} {p.topology} slice ({p.accelerator}): {p.chips} chips = {p.hosts} "
        f"host(s) x {p.chips_per_host} chips, {p.machine_type}, {p.workload}"
    )


def _mesh(summary: ModelSummary) -> str:
    m = summary.status.mesh
    if m is None:
        return DASH
    axes = " x ".join(f"{a}={n}" for a, n in zip(m.axes, m.shape, strict=False))
    return f"{axes}  (tensor parallel {m.tensor_parallel}, data parallel {m.data_parallel})"


def _sampled(summary: ModelSummary, now: datetime) -> str:
    sampled = summary.metrics.sampled_at
    if sampled is None:
        return "not sampled yet"
    text = f"sampled {age(sampled, now)} ago ({sampled.strftime('%Y-%m-%dT%H:%M:%SZ')})"
    limit = window_seconds(summary.cost.window) if summary.cost else None
    seconds = summary.sampled_age(now)
    if limit is not None and seconds is not None and seconds > limit:
        text += f", STALE: older than the {summary.cost.window if summary.cost else ''} window"
    return text


def _figures(summary: ModelSummary, now: datetime) -> list[str]:
    m = summary.metrics
    cost = summary.cost
    basis = f"window {cost.window}, {cost.basis} tokens" if cost is not None else "spec.cost unreadable"
    ceiling = f"ceiling {summary.ceiling:.3f}" if summary.ceiling is not None else f"ceiling {DASH}"
    breakeven = m.break_even_tokens_per_second
    tokens = summary.figure(m.tokens_per_second)
    multiple = f"{tokens.value / breakeven:.2f}x break-even" if tokens.value is not None and breakeven else ""
    latency = summary.figure(m.p95_latency_seconds, LATENCY_SLO_BREACHED)
    slo = f"SLO {summary.slo.p95_latency_seconds:.3f} s" if summary.slo is not None else "no SLO set"
    planned = summary.planned
    if planned is not None:
        unmeasured = f"not measured yet ({summary.figure(None).unknown_reason})"
        cost_rows = [
            ["$/hour", f"{planned.usd_per_hour:,.2f} {PLANNED}", unmeasured, ""],
            ["break-even", f"{planned.break_even_tokens_per_second:,.1f} tokens/s {PLANNED}", "", ""],
        ]
    else:
        cost_rows = [
            ["$/hour", _shown(summary.figure(m.cost_usd_per_hour), "{:,.2f}"), "", ""],
            ["break-even", _shown(summary.figure(breakeven), "{:,.1f} tokens/s"), "", ""],
        ]
    rows = [
        ["$/Mtok", _shown(summary.figure(m.cost_usd_per_million_tokens), "{:.3f}"), ceiling,
         _headroom(summary.cost_headroom, "ceiling")],
        *cost_rows,
        ["tokens/s", _shown(tokens, "{:,.1f}"), multiple, ""],
        ["p95 e2e", _shown(latency, "{:.3f} s"), slo, _headroom(summary.latency_headroom, "SLO")],
        ["p95 TTFT", _shown(summary.figure(m.p95_ttft_seconds), "{:.3f} s"), "", ""],
        ["prefix hit", _shown(summary.figure(m.prefix_cache_hit_ratio), "{:.1%}"), "", ""],
    ]  # fmt: skip
    return [f"Figures     {basis}, {_sampled(summary, now)}", *_table(["", "", "", ""], rows, "  ")[1:]]


def _conditions(summary: ModelSummary, now: datetime) -> list[str]:
    if not summary.status.conditions:
        return ["Conditions  <none>"]
    rows = [
        [c.type, c.status, c.reason, age(c.last_transition_time, now), " ".join(c.message.split())]
        for c in summary.status.conditions
    ]
    return ["Conditions", *_table(["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], rows, "  ")]


def _events(events: Sequence[EventLine], now: datetime) -> list[str]:
    if not events:
        return ["Events      <none>"]
    rows = [[age(e.last_seen, now), e.type, e.reason, f"x{e.count}", e.source, e.message] for e in events]
    return ["Events", *_table(["AGE", "TYPE", "REASON", "COUNT", "FROM", "MESSAGE"], rows, "  ")]


def render_model(summary: ModelSummary, events: Sequence[EventLine], now: datetime) -> str:
    """The full screen of one model."""
    phase = summary.status.phase or DASH
    lines = [
        f"{summary.namespace}/{summary.name}   {phase}   {_generation_note(summary)}, "
        f"created {age(summary.created, now)} ago",
        f"Verdict     {_verdict(summary)}",
    ]
    if summary.status_error is not None:
        lines.append(f"Status      unreadable ({summary.status_error}): shown as empty")
    lines += [
        "",
        f"Placement   {_placement(summary)}",
        f"Mesh        {_mesh(summary)}",
        f"Endpoint    {summary.status.endpoint or DASH}",
        "",
        *_figures(summary, now),
        "",
        *_conditions(summary, now),
        "",
        *_events(events, now),
    ]
    return "\n".join(lines) + "\n"


# -- the fleet ----------------------------------------------------------------------------------


def _value(value: float | None, fmt: str) -> str:
    return fmt.format(value) if value is not None else DASH


def _note(summary: ModelSummary) -> str:
    """The first thing to look at: problems, else why the cost cannot be judged."""
    notes = list(summary.problems)
    cost = summary.figure(summary.metrics.cost_usd_per_million_tokens)
    if cost.value is None:
        notes.append(f"$/Mtok {cost.unknown_reason}")
    return "; ".join(notes) or "OK"


def render_fleet(summaries: Sequence[ModelSummary], now: datetime, with_namespace: bool) -> str:
    """One line per model: like ``kubectl get djm``, with each figure next to its limit."""
    header = ["NAME", "PHASE", "READY", "TPU", "REPLICAS", "$/MTOK", "CEILING", "HEADROOM", "$/HOUR",
              "TOK/S", "P95", "SLO", "PREFIX", "SAMPLED", "AGE", "NOTE"]  # fmt: skip
    rows = []
    for s in summaries:
        m, p = s.metrics, s.status.placement
        ready = s.condition("Ready")
        rows.append(
            [
                s.name,
                s.status.phase or DASH,
                ready.status if ready is not None else DASH,
                f"{p.generation} {p.topology}" if p is not None else DASH,
                str(s.replicas) if s.replicas is not None else DASH,
                _value(m.cost_usd_per_million_tokens, "{:.3f}"),
                _value(s.ceiling, "{:.3f}"),
                _value(s.cost_headroom, "{:.1f}%"),
                _value(m.cost_usd_per_hour, "{:,.2f}")
                if s.planned is None
                else f"{s.planned.usd_per_hour:,.2f} {PLANNED}",
                _value(m.tokens_per_second, "{:,.1f}"),
                _value(m.p95_latency_seconds, "{:.3f}s"),
                _value(s.slo.p95_latency_seconds if s.slo else None, "{:.3f}s"),
                _value(m.prefix_cache_hit_ratio, "{:.1%}"),
                age(m.sampled_at, now) if m.sampled_at else DASH,
                age(s.created, now),
                _note(s),
            ]
        )
    if with_namespace:
        header = ["NAMESPACE", *header]
        rows = [[s.namespace, *row] for s, row in zip(summaries, rows, strict=True)]
    return "\n".join(_table(header, rows)) + "\n"
