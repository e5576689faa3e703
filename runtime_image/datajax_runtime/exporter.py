"""The sidecar's own exposition: exactly the `datajax_*` names of DESIGN §5, in the text format.

Written by hand rather than through a client-library registry because the set is small and fixed,
and the text is rebuilt once per scrape interval and then served as-is to every reader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from datajax_runtime.compile_cache import CacheReport
from datajax_runtime.plan_status import PlanStatus
from datajax_runtime.window import Figures, Pricing

__all__ = ["ExportState", "render"]


@dataclass(frozen=True)
class ExportState:
    """Everything one rendering needs; immutable so a reader never sees a half-updated set."""

    figures: Figures
    pricing: Pricing
    upstream_up: bool
    scrape_errors: int
    slo_p95_seconds: float | None
    plan_status_configured: bool
    plan: PlanStatus | None
    model: str
    cost_window_seconds: float = float("nan")
    """spec.cost.window as the sidecar was configured (its ring's span); NaN when unknown."""
    compile_cache: CacheReport | None = None


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(out: list[str], name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        out.append(f"{name}{labels} {_number(value)}")


def render(state: ExportState) -> str:
    """The `/metrics` body for one state."""
    f = state.figures
    p = state.pricing
    basis = f'{{basis="{p.basis}"}}'
    out: list[str] = []
    _family(
        out,
        "datajax_cost_usd_per_hour",
        "gauge",
        "Price of the slice: chips x USD per chip-hour.",
        [("", f.usd_per_hour)],
    )
    _family(
        out,
        "datajax_cost_usd_per_million_tokens",
        "gauge",
        "USD per million tokens over the window (NaN below the minimum token rate).",
        [(basis, f.usd_per_million_tokens)],
    )
    _family(
        out,
        "datajax_cost_ceiling_usd_per_million_tokens",
        "gauge",
        "The cost ceiling the operator enforces.",
        [("", p.ceiling_usd_per_million_tokens)],
    )
    _family(
        out,
        "datajax_cost_min_tokens_per_second",
        "gauge",
        "The model's spec.cost.minTokensPerSecond: below it, summed over the slices, cost is not judged.",
        [("", p.min_tokens_per_second)],
    )
    _family(
        out,
        "datajax_cost_window_seconds",
        "gauge",
        "The model's spec.cost.window: how long a judgement must hold before the ceiling is breached.",
        [("", state.cost_window_seconds)],
    )
    _family(
        out,
        "datajax_breakeven_tokens_per_second",
        "gauge",
        "Token rate at which the slice costs exactly the ceiling.",
        [("", f.breakeven_tokens_per_second)],
    )
    _family(
        out,
        "datajax_latency_p95_seconds",
        "gauge",
        "p95 latency over the window from vLLM's histograms (NaN without requests).",
        [
            ('{kind="e2e"}', f.p95_e2e_latency_seconds),
            ('{kind="ttft"}', f.p95_ttft_seconds),
            ('{kind="itl"}', f.p95_itl_seconds),
        ],
    )
    if state.slo_p95_seconds is not None:
        _family(
            out,
            "datajax_latency_slo_seconds",
            "gauge",
            "The p95 latency objective.",
            [("", state.slo_p95_seconds)],
        )
    _family(
        out,
        "datajax_prefix_cache_hit_ratio",
        "gauge",
        "Prefix-cache hits over queries (in tokens) over the window.",
        [("", f.prefix_cache_hit_ratio)],
    )
    _family(
        out,
        "datajax_tokens_per_second",
        "gauge",
        "Token rate over the window.",
        [
            ('{kind="prompt"}', f.prompt_tokens_per_second),
            ('{kind="generation"}', f.generation_tokens_per_second),
        ],
    )
    _family(
        out,
        "datajax_requests_per_second",
        "gauge",
        "Finished requests per second over the window.",
        [("", f.requests_per_second)],
    )
    _family(
        out,
        "datajax_window_seconds",
        "gauge",
        "Span between the oldest and newest scrape in the window.",
        [("", f.window_seconds)],
    )
    _family(
        out,
        "datajax_upstream_up",
        "gauge",
        "1 if the last scrape of vLLM succeeded.",
        [("", 1.0 if state.upstream_up else 0.0)],
    )
    _family(
        out,
        "datajax_scrape_errors_total",
        "counter",
        "Failed scrapes of vLLM (unreachable, bad status or malformed text).",
        [("", float(state.scrape_errors))],
    )
    if state.plan_status_configured:
        plan = state.plan
        _family(
            out,
            "datajax_plan_registered",
            "gauge",
            "1 if the vLLM plugin registered the plan's architecture with tpu-inference.",
            [("", 1.0 if plan is not None and plan.registered else 0.0)],
        )
        if plan is not None:
            labels = {
                "model": state.model or plan.model,
                "architecture": plan.architecture,
                "implementation": plan.implementation,
                "mesh": plan.mesh,
                "hash": plan.hash,
                "reason": plan.reason,
                "bundle_version": str(plan.bundle_version),
            }
            text = ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items())
            _family(
                out,
                "datajax_plan_info",
                "gauge",
                "The plan the serving pod runs (value is always 1).",
                [("{" + text + "}", 1.0)],
            )
        match = plan.devices_match if plan is not None else None
        if match is not None:
            _family(
                out,
                "datajax_devices_match",
                "gauge",
                "1 if the TPU devices JAX enumerated at start-up match the planned slice (chips, hosts, "
                "generation, topology), 0 on a mismatch; absent until the check has run.",
                [("", 1.0 if match else 0.0)],
            )
    cache = state.compile_cache
    if cache is not None:
        _family(
            out,
            "datajax_xla_cache_hit",
            "gauge",
            "1 if the XLA compile cache held compiled programs when this pod started, 0 if it started cold.",
            [("", 1.0 if cache.hit else 0.0)],
        )
        entries = [('{when="start"}', float(cache.entries_at_start))]
        if cache.entries_at_ready is not None:
            entries.append(('{when="ready"}', float(cache.entries_at_ready)))
        _family(
            out,
            "datajax_xla_cache_entries",
            "gauge",
            "Files in the XLA compile cache directory when the pod started and when vLLM first answered.",
            entries,
        )
        if cache.startup_seconds is not None:
            _family(
                out,
                "datajax_startup_seconds",
                "gauge",
                "Seconds from the pod's start to vLLM's first answer: weight load plus XLA compilation "
                "(an upper bound on the compile time).",
                [("", cache.startup_seconds)],
            )
    out.append("")
    return "\n".join(out)
