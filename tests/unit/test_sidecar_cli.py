"""`datajax-sidecar analyze`: DESIGN §6 keys, NaN as null, clear errors; duration parsing."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from datajax_runtime.cli import main, parse_duration
from datajax_runtime.window import ANALYZE_KEYS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vllm_fixtures import fixtures_dir, scrape_time

COST_MODEL = Path(__file__).resolve().parents[2] / "docs" / "cost-model.md"


def documented_keys() -> list[str]:
    """The keys of the first `json output` block of docs/cost-model.md: the analyze output users read
    (test_docs runs that command and compares the whole document)."""
    text = COST_MODEL.read_text(encoding="utf-8")
    block = re.search(r"```json output\n(.*?)```", text, flags=re.S)
    assert block is not None, "docs/cost-model.md shows no analyze output"
    return list(json.loads(block.group(1)))


def test_analyze_prints_exactly_the_design_keys() -> None:
    seconds = scrape_time(3) - scrape_time(2)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "datajax_runtime.cli",
            "analyze",
            str(fixtures_dir() / "scrape-2.prom"),
            str(fixtures_dir() / "scrape-3.prom"),
            "--seconds",
            str(seconds),
            "--chips",
            "8",
            "--usd-per-chip-hour",
            "2.7",
            "--basis",
            "total",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)
    assert list(result) == list(ANALYZE_KEYS) == documented_keys()
    assert result["requests"] == 96
    assert result["p95_e2e_latency_seconds"] == pytest.approx(0.764375)
    assert result["usd_per_hour"] == pytest.approx(21.6)
    assert result["breakeven_tokens_per_second"] == pytest.approx(2000.0)


def test_unknown_figures_are_null(capsys: pytest.CaptureFixture[str]) -> None:
    same = str(fixtures_dir() / "scrape-0.prom")
    assert main(["analyze", same, same, "--seconds", "10", "--chips", "1", "--usd-per-chip-hour", "1.2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["requests"] == 0
    assert result["p95_e2e_latency_seconds"] is None
    assert result["prefix_cache_hit_ratio"] is None
    assert result["usd_per_million_tokens"] is None
    assert result["prompt_tokens_per_second"] == 0


def test_malformed_input_exits_2_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.prom"
    bad.write_text('vllm:prompt_tokens_total{engine="0"} lots\n', encoding="utf-8")
    code = main(["analyze", str(bad), str(bad), "--seconds", "1", "--chips", "1", "--usd-per-chip-hour", "1"])
    assert code == 2
    assert "line 1: value 'lots' is not a number" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600.0), ("5s", 5.0), ("1h", 3600.0), ("250ms", 0.25), ("30", 30.0), ("1m30s", 90.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "ten minutes", "-5s", "5 s", "nan", "inf"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)
