"""The Grafana dashboards: generated from tools/generate_dashboards.py, well-formed, complete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.chart.chartlib import CHART, REPO

pytestmark = pytest.mark.chart

GENERATOR = REPO / "tools" / "generate_dashboards.py"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((CHART / "dashboards" / name).read_text()))


def test_checked_in_json_is_the_generated_output(tmp_path: Path) -> None:
    check = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True)
    (tmp_path / "datajax-model.json").write_text("{}\n")
    stale = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert stale.returncode == 1 and "datajax-model.json" in stale.stderr


@pytest.mark.parametrize("name", ["datajax-model.json", "datajax-fleet.json"])
def test_dashboard_shape(name: str) -> None:
    board = load(name)
    assert board["uid"] == name.removesuffix(".json")
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))


def test_model_dashboard_has_the_requested_panels() -> None:
    board = load("datajax-model.json")
    titles = {p["title"] for p in board["panels"]}
    assert {"$/Mtok vs ceiling", "$/hour", "Break-even tokens/s", "p95 latency"} <= titles
    assert {"Prefix-cache hit ratio", "Requests running / waiting", "KV-cache usage"} <= titles
    assert {"Throughput vs break-even", "Tokens/s"} <= titles
    variables = {v["name"] for v in board["templating"]["list"]}
    assert {"namespace", "model"} <= variables
    latency = next(p for p in board["panels"] if p["title"] == "p95 latency")
    assert latency["fieldConfig"]["defaults"]["unit"] == "s"


def test_fleet_dashboard_has_the_requested_panels() -> None:
    board = load("datajax-fleet.json")
    titles = {p["title"] for p in board["panels"]}
    assert {"Cost / ceiling per model", "Models above ceiling", "$/hour by TPU generation"} <= titles
    assert {"Models", "Fleet $/hour", "Breached (operator)"} <= titles
