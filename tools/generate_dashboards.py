"""Generate the chart's Grafana dashboards (per-model and fleet) as JSON.

Why code and not hand-edited JSON: every panel shares the datasource variable, the label selectors
and the grid arithmetic, and the PromQL lives in one readable place. The checked-in JSON under
``charts/datajax-operator/dashboards/`` is what the chart ships; ``--check`` fails when it differs
from what this script generates, so nobody edits one without the other.

Label names used here are the target labels the chart's scrape objects set from pod labels
(``model`` from ``app.kubernetes.io/instance``, ``tpu_generation`` from ``datajax.dev/tpu-generation``),
plus ``namespace`` and ``pod`` that both Prometheus Operator and GKE managed Prometheus attach.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent.parent / "charts" / "datajax-operator" / "dashboards"
GRID_WIDTH = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
MODEL = 'namespace="$namespace", model="$model"'
FLEET = 'namespace=~"$namespace"'


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel; ``instant`` for table cells, else a range query."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    """A panel before layout: its size is given, its position is computed."""

    title: str
    description: str
    targets: tuple[Target, ...]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if panel.threshold is not None:
        steps.append({"color": "red", "value": panel.threshold})
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "targets": [
            {
                "datasource": DATASOURCE,
                "refId": chr(ord("A") + i),
                "expr": t.expr,
                "legendFormat": t.legend,
                "instant": t.instant,
                "range": not t.instant,
                **({"format": "table"} if t.instant else {}),
            }
            for i, t in enumerate(panel.targets)
        ],
    }
    if panel.kind == "timeseries" and panel.threshold is not None:
        out["fieldConfig"]["defaults"]["custom"] = {"thresholdsStyle": {"mode": "line+area"}}
    if panel.kind == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    out.update(panel.extra)
    return out


def _layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Place panels left to right, wrapping rows at the 24-column grid."""
    placed: list[dict[str, Any]] = []
    x = y = row_height = 0
    for i, panel in enumerate(panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        placed.append(_panel_json(panel, i, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return placed


def _query_var(name: str, label: str, query: str, *, include_all: bool) -> dict[str, Any]:
    var: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "includeAll": include_all,
        "multi": include_all,
        "current": {},
    }
    if include_all:
        var["allValue"] = ".*"
    return var


def _dashboard(
    uid: str, title: str, description: str, variables: list[dict[str, Any]], panels: list[Panel]
) -> dict[str, Any]:
    datasource_var = {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
    }
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["datajax", "vllm", "tpu"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "links": [
            {
                "type": "dashboards",
                "tags": ["datajax"],
                "asDropdown": True,
                "title": "DataJAX dashboards",
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "templating": {"list": [datasource_var, *variables]},
        "annotations": {"list": []},
        "panels": _layout(panels),
    }


def model_dashboard() -> dict[str, Any]:
    """One model: what it costs against its ceiling, how fast it is, and why."""
    m = MODEL
    panels = [
        Panel(
            "$/Mtok (worst slice)",
            "Measured cost per million tokens over the sidecar's window; the worst serving slice.",
            (Target(f"max(datajax_cost_usd_per_million_tokens{{{m}}})"),),
            kind="stat",
            unit="currencyUSD",
            width=4,
            height=4,
        ),
        Panel(
            "Ceiling $/Mtok",
            "The model's cost ceiling (cost.ceilingUSDPerMillionTokens).",
            (Target(f"max(datajax_cost_ceiling_usd_per_million_tokens{{{m}}})"),),
            kind="stat",
            unit="currencyUSD",
            width=4,
            height=4,
        ),
        Panel(
            "$/hour",
            "What the model's TPU slices cost per hour: chips x $/chip-hour, summed over replicas.",
            (Target(f"sum(datajax_cost_usd_per_hour{{{m}}})"),),
            kind="stat",
            unit="currencyUSD",
            width=4,
            height=4,
        ),
        Panel(
            "Tokens/s",
            "Prompt + generated tokens per second over the window, all replicas.",
            (Target(f"sum(datajax_tokens_per_second{{{m}}})"),),
            kind="stat",
            unit="short",
            width=4,
            height=4,
        ),
        Panel(
            "Break-even tokens/s",
            "Throughput at which the cost equals the ceiling; below it the model costs more than allowed.",
            (Target(f"sum(datajax_breakeven_tokens_per_second{{{m}}})"),),
            kind="stat",
            unit="short",
            width=4,
            height=4,
        ),
        Panel(
            "Prefix-cache hit ratio",
            "Share of prompt tokens served from the prefix cache over the window.",
            (Target(f"avg(datajax_prefix_cache_hit_ratio{{{m}}})"),),
            kind="stat",
            unit="percentunit",
            width=4,
            height=4,
        ),
        Panel(
            "$/Mtok vs ceiling",
            "Cost per million tokens of each slice (by basis) against the ceiling line.",
            (
                Target(f"datajax_cost_usd_per_million_tokens{{{m}}}", "{{pod}} ({{basis}})"),
                Target(f"max(datajax_cost_ceiling_usd_per_million_tokens{{{m}}})", "ceiling"),
            ),
            unit="currencyUSD",
        ),
        Panel(
            "Throughput vs break-even",
            "Tokens per second by kind, against the break-even rate of the ceiling.",
            (
                Target(f"sum by (kind) (datajax_tokens_per_second{{{m}}})", "{{kind}}"),
                Target(f"sum(datajax_breakeven_tokens_per_second{{{m}}})", "break-even"),
            ),
        ),
        Panel(
            "p95 latency",
            "p95 end-to-end, time-to-first-token and inter-token latency over the window, against the SLO.",
            (
                Target(f"max by (kind) (datajax_latency_p95_seconds{{{m}}})", "p95 {{kind}}"),
                Target(f"max(datajax_latency_slo_seconds{{{m}}})", "SLO"),
            ),
            unit="s",
        ),
        Panel(
            "Prefix-cache hit ratio per slice",
            "Δhits / Δqueries of vLLM's prefix cache, per serving pod.",
            (Target(f"datajax_prefix_cache_hit_ratio{{{m}}}", "{{pod}}"),),
            unit="percentunit",
        ),
        Panel(
            "$/hour",
            "Hourly cost of the model's slices.",
            (Target(f"sum(datajax_cost_usd_per_hour{{{m}}})", "$/hour"),),
            unit="currencyUSD",
        ),
        Panel(
            "Requests/s",
            "Finished requests per second over the window.",
            (Target(f"sum(datajax_requests_per_second{{{m}}})", "requests/s"),),
            unit="reqps",
        ),
        Panel(
            "Requests running / waiting",
            "vLLM scheduler queues (raw vLLM gauges): waiting requests mean the slice is saturated.",
            (
                Target(f"sum(vllm:num_requests_running{{{m}}})", "running"),
                Target(f"sum(vllm:num_requests_waiting{{{m}}})", "waiting"),
            ),
        ),
        Panel(
            "KV-cache usage",
            "Fraction of the KV cache in use per pod (raw vLLM gauge); near 1 means preemptions.",
            (Target(f"max by (pod) (vllm:kv_cache_usage_perc{{{m}}})", "{{pod}}"),),
            unit="percentunit",
            threshold=0.9,
        ),
        Panel(
            "Sidecar health",
            "1 when the sidecar reads vLLM, and when the DataJAX plan is registered; scrape errors/s.",
            (
                Target(f"min(datajax_upstream_up{{{m}}})", "upstream up"),
                Target(f"min(datajax_plan_registered{{{m}}})", "plan registered"),
                Target(f"sum(rate(datajax_scrape_errors_total{{{m}}}[5m]))", "scrape errors/s"),
            ),
            width=24,
        ),
    ]
    variables = [
        _query_var(
            "namespace", "Namespace", "label_values(datajax_cost_usd_per_hour, namespace)", include_all=False
        ),
        _query_var(
            "model",
            "Model",
            'label_values(datajax_cost_usd_per_hour{namespace="$namespace"}, model)',
            include_all=False,
        ),
    ]
    return _dashboard(
        "datajax-model",
        "DataJAX model",
        "One DataJaxModel: $/Mtok against its ceiling, latency, prefix caching and vLLM queues.",
        variables,
        panels,
    )


def fleet_dashboard() -> dict[str, Any]:
    """Every model at once: who breaches the ceiling, and what the TPUs cost by generation."""
    f = FLEET
    by_model = "namespace, model"
    breaching = (
        f"count(count by ({by_model}) (datajax_cost_usd_per_million_tokens{{{f}}}"
        f" > ignoring (basis) datajax_cost_ceiling_usd_per_million_tokens{{{f}}})) or vector(0)"
    )
    table_targets = (
        Target(
            f"max by (namespace, model, tpu_generation) (datajax_cost_usd_per_million_tokens{{{f}}})",
            "$/Mtok",
            instant=True,
        ),
        Target(
            f"max by (namespace, model, tpu_generation) (datajax_cost_ceiling_usd_per_million_tokens{{{f}}})",
            "ceiling",
            instant=True,
        ),
        Target(
            f"sum by (namespace, model, tpu_generation) (datajax_cost_usd_per_hour{{{f}}})",
            "$/hour",
            instant=True,
        ),
        Target(
            f'max by (namespace, model, tpu_generation) (datajax_latency_p95_seconds{{{f}, kind="e2e"}})',
            "p95 e2e",
            instant=True,
        ),
        Target(
            f"avg by (namespace, model, tpu_generation) (datajax_prefix_cache_hit_ratio{{{f}}})",
            "prefix hit",
            instant=True,
        ),
    )
    panels = [
        Panel(
            "Fleet $/hour",
            "What every served model's TPU slices cost per hour.",
            (Target(f"sum(datajax_cost_usd_per_hour{{{f}}})"),),
            kind="stat",
            unit="currencyUSD",
            width=6,
            height=4,
        ),
        Panel(
            "Models above ceiling",
            "Models with at least one slice whose $/Mtok is above its ceiling right now.",
            (Target(breaching),),
            kind="stat",
            width=6,
            height=4,
            threshold=1,
        ),
        Panel(
            "Breached (operator)",
            "Models whose CostCeilingBreached condition is True, as the operator counts them.",
            (Target("max(datajax_operator_models_cost_breached)"),),
            kind="stat",
            width=6,
            height=4,
            threshold=1,
        ),
        Panel(
            "Fleet tokens/s",
            "Prompt + generated tokens per second across every model.",
            (Target(f"sum(datajax_tokens_per_second{{{f}}})"),),
            kind="stat",
            width=6,
            height=4,
        ),
        Panel(
            "Cost / ceiling per model",
            "Each model's $/Mtok as a fraction of its ceiling; above 1 breaches.",
            (
                Target(
                    f"max by ({by_model}) (datajax_cost_usd_per_million_tokens{{{f}}}"
                    f" / ignoring (basis) datajax_cost_ceiling_usd_per_million_tokens{{{f}}})",
                    "{{namespace}}/{{model}}",
                ),
            ),
            unit="percentunit",
            threshold=1,
        ),
        Panel(
            "$/hour by TPU generation",
            "Hourly TPU cost by generation (pod label datajax.dev/tpu-generation).",
            (Target(f"sum by (tpu_generation) (datajax_cost_usd_per_hour{{{f}}})", "{{tpu_generation}}"),),
            unit="currencyUSD",
        ),
        Panel(
            "Models",
            "Every model's current figures.",
            table_targets,
            kind="table",
            width=24,
            extra={"transformations": [{"id": "merge", "options": {}}]},
        ),
        Panel(
            "$/Mtok per model",
            "Worst slice's cost per million tokens, per model.",
            (
                Target(
                    f"max by ({by_model}) (datajax_cost_usd_per_million_tokens{{{f}}})",
                    "{{namespace}}/{{model}}",
                ),
            ),
            unit="currencyUSD",
        ),
        Panel(
            "Models by phase",
            "DataJaxModels by status.phase, as the operator counts them.",
            (Target("sum by (phase) (datajax_operator_models)", "{{phase}}"),),
        ),
        Panel(
            "Reconciles/s by result",
            "Operator reconciles per second, by outcome.",
            (Target("sum by (result) (rate(datajax_operator_reconciles_total[5m]))", "{{result}}"),),
            unit="ops",
        ),
        Panel(
            "Reconcile p95 duration and errors",
            "How long one reconcile takes (p95), and failed reconciles per second.",
            (
                Target(
                    "histogram_quantile(0.95,"
                    " sum by (le) (rate(datajax_operator_reconcile_duration_seconds_bucket[5m])))",
                    "p95 duration (s)",
                ),
                Target("sum(rate(datajax_operator_reconcile_errors_total[5m]))", "errors/s"),
            ),
        ),
    ]
    variables = [
        _query_var(
            "namespace", "Namespace", "label_values(datajax_cost_usd_per_hour, namespace)", include_all=True
        ),
    ]
    return _dashboard(
        "datajax-fleet",
        "DataJAX fleet",
        "Every DataJaxModel: cost against ceiling, breaches, $/hour by TPU generation, operator health.",
        variables,
        panels,
    )


DASHBOARDS = {"datajax-model.json": model_dashboard, "datajax-fleet.json": fleet_dashboard}


def render(dashboard: dict[str, Any]) -> str:
    """Stable text: sorted keys and a final newline, so regeneration is byte-identical."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the checked-in JSON is stale")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path: Path = args.out / name
        text = render(build())
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("stale dashboards (run tools/generate_dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
