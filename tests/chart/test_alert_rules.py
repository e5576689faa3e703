"""The chart's alert rules: one source, valid for promtool, and proven by promtool unit tests.

The rule files are extracted from the rendered chart (one file per rule object, its spec.groups as
the file's groups), so what is tested is exactly what a cluster would load.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import REPO, RULE_TESTS, Renderer, one, run

pytestmark = pytest.mark.chart

ALL_RULES = ["alerts.prometheusRule.enabled=true", "alerts.gmpRules.enabled=true"]
REQUIRED_ALERTS = {
    "DataJaxCostCeilingBreached",
    "DataJaxLatencySLOBreached",
    "DataJaxPrefixCacheHitRatioLow",
    "DataJaxMetricsMissing",
    "DataJaxDevicesMismatch",
    "DataJaxOperatorDown",
}


def rule_groups(renderer: Renderer, sets: list[str] | None = None) -> list[dict[str, Any]]:
    """The rendered groups; `sets` go through `--set-json` so numbers stay numbers."""
    extra = [arg for s in sets or [] for arg in ("--set-json", s)]
    docs = renderer.render(sets=ALL_RULES, extra=extra)
    prom = one(docs, "PrometheusRule")["spec"]["groups"]
    gmp = one(docs, "ClusterRules")["spec"]["groups"]
    assert prom == gmp, "PrometheusRule and ClusterRules must carry the same rules"
    return list(prom)


def alerts(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def write_rule_file(groups: list[dict[str, Any]], directory: Path) -> Path:
    path = directory / "alerts.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def test_rules_render_from_one_source_with_every_alert(renderer: Renderer) -> None:
    found = alerts(rule_groups(renderer))
    assert set(found) >= REQUIRED_ALERTS
    runbooks = (REPO / "docs" / "runbooks.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^## (.+)$", runbooks, flags=re.M)}
    for name, rule in found.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], name
        assert "$labels" in ann["description"] or "job" in ann["description"], name
        url, _, anchor = ann["runbook_url"].partition("#")
        assert url.endswith("docs/runbooks.md") and anchor == name.lower(), ann["runbook_url"]
        assert anchor in headings, f"docs/runbooks.md has no section '## {name}'"
    # The figures are in the text, templated by Prometheus (not eaten by Helm).
    assert "{{ $value | humanize }}" in found["DataJaxCostCeilingBreached"]["annotations"]["description"]
    assert "| query }}" in found["DataJaxCostCeilingBreached"]["annotations"]["description"]


def test_values_reach_the_rules(renderer: Renderer) -> None:
    found = alerts(
        rule_groups(
            renderer,
            [
                "alerts.prefixCacheHitRatio.threshold=0.35",
                'alerts.costCeiling.severity="critical"',
                'alerts.extraLabels.team="ml-serving"',
            ],
        )
    )
    assert "< 0.35" in found["DataJaxPrefixCacheHitRatioLow"]["expr"]
    # held for each model's own cost.window (a series the sidecars export), not for a chart-wide `for`
    assert "for" not in found["DataJaxCostCeilingBreached"]
    assert "datajax_cost_window_seconds" in found["DataJaxCostCeilingBreached"]["expr"]
    assert found["DataJaxCostCeilingBreached"]["labels"] == {"severity": "critical", "team": "ml-serving"}
    assert all(r["labels"]["team"] == "ml-serving" for r in found.values())


def test_operator_alerts_follow_operator_scraping(renderer: Renderer) -> None:
    found = alerts(rule_groups(renderer, ["monitoring.operator.enabled=false"]))
    assert "DataJaxOperatorDown" not in found
    assert "DataJaxCostCeilingBreached" in found


def test_promtool_check_rules(renderer: Renderer, promtool: str, tmp_path: Path) -> None:
    path = write_rule_file(rule_groups(renderer), tmp_path)
    proc = run([promtool, "check", "rules", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def _run_unit_tests(promtool: str, groups: list[dict[str, Any]], directory: Path) -> tuple[int, str]:
    write_rule_file(groups, directory)
    tests = sorted(RULE_TESTS.glob("*.test.yaml"))
    assert tests, "no promtool unit tests found"
    for t in tests:
        shutil.copy(t, directory / t.name)
    proc = run([promtool, "test", "rules", *(str(directory / t.name) for t in tests)])
    return proc.returncode, proc.stdout + proc.stderr


def test_promtool_unit_tests_fire_and_stay_silent(renderer: Renderer, promtool: str, tmp_path: Path) -> None:
    code, out = _run_unit_tests(promtool, rule_groups(renderer), tmp_path)
    assert code == 0, out
    covered = set()
    for t in RULE_TESTS.glob("*.test.yaml"):
        for group in yaml.safe_load(t.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    covered.add(case["alertname"])
    assert covered >= REQUIRED_ALERTS


@pytest.mark.parametrize(
    "mutation",
    [
        'alerts.costCeiling.severity="critical"',
        "alerts.prefixCacheHitRatio.threshold=0.01",
        'alerts.metricsMissing.severity="info"',
    ],
)
def test_unit_tests_catch_a_changed_rule(
    renderer: Renderer, promtool: str, tmp_path: Path, mutation: str
) -> None:
    code, out = _run_unit_tests(promtool, rule_groups(renderer, [mutation]), tmp_path)
    assert code != 0, f"the promtool unit tests did not notice {mutation}"
    assert "FAILED" in out
