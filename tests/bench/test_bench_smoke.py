"""Smoke mode of the benchmarks: they run at a tiny size and produce well-formed figures (nothing is
timed or compared here; `make bench` measures)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vllm_fixtures import scrape_text

SCRIPT = Path(__file__).with_name("bench_sidecar.py")


@pytest.mark.bench
def test_sidecar_benchmark_runs_in_tiny_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--iterations", "2", "--repeats", "1", "--ring", "2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    pattern = (
        r".+ \([\d.]+ KiB, \d+ samples\): datajax \d+ us/scrape .*"
        r" prometheus_client \d+ us/scrape .* ratio [\d.]+x"
    )
    for line in lines:
        assert re.fullmatch(pattern, line), line
    assert "435 samples" in lines[0]  # the whole real exposition was parsed


@pytest.mark.bench
def test_sidecar_benchmark_compares_like_with_like() -> None:
    """What the benchmark times is the same computation on both sides, and its synthesised input is
    what it claims: prometheus_client's parse gives the figures ours gives, on both inputs, and eight
    engines serve eight times the tokens at the same latency and price."""
    import bench_sidecar

    from datajax_runtime.window import figures, increase

    def window(make: Any, texts: tuple[str, str]) -> Any:
        older, newer = make(texts[0], 0.0), make(texts[1], 5.0)
        return figures(increase(older, newer), bench_sidecar.PRICING)

    real = (scrape_text(2), scrape_text(3))
    eight = (bench_sidecar.eight_engines(real[0]), bench_sidecar.eight_engines(real[1]))
    for texts in (real, eight):
        assert window(bench_sidecar.ours, texts) == window(
            bench_sidecar.snapshot_via_prometheus_client, texts
        )
    one, many = window(bench_sidecar.ours, real), window(bench_sidecar.ours, eight)
    assert one.prompt_tokens_per_second > 0
    assert many.prompt_tokens_per_second == pytest.approx(8 * one.prompt_tokens_per_second)
    assert many.generation_tokens_per_second == pytest.approx(8 * one.generation_tokens_per_second)
    assert many.p95_e2e_latency_seconds == pytest.approx(one.p95_e2e_latency_seconds)
    assert many.usd_per_hour == one.usd_per_hour


@pytest.mark.bench
def test_reconcile_benchmark_runs_in_tiny_mode(local_cluster: Any, kubeconfig: Path, tmp_path: Path) -> None:
    """Every stage of `make bench` (raw limit, minimal kopf, operator burst, steady state, idle latency,
    py-spy profile, sidecar) on the session's control plane, at N = 3."""
    import bench_reconcile
    import run_bench
    from apiclient import Endpoint
    from procs import py_spy
    from report import check, tables

    endpoint = Endpoint(local_cluster.server, local_cluster.token, local_cluster.ca_cert)
    results = run_bench.run(endpoint, kubeconfig, tmp_path, bench_reconcile.Settings.smoke(), smoke=True)
    check(results)
    datajax = next(r for r in results["reconcile"]["throughput"] if r["variant"] == "datajax")
    if py_spy() is not None:
        assert datajax["profile"]["stages"], datajax
    steady = results["reconcile"]["steady_state"][0]
    assert steady["writes_per_minute"] == 0, steady["writes_by_kind"]  # a settled model costs no writes
    [traffic] = results["traffic"]  # live sidecars at N = 3: figures reach every status
    assert traffic["models"] == 3 and traffic["scrapes_per_model_per_minute"] > 0, traffic
    text = tables(results)
    for heading in ("Throughput", "ratio", "Latency", "Steady state", "live sidecars", "Sidecar"):
        assert heading in text


@pytest.mark.bench
def test_fleet_simulator_runs_every_cell_in_tiny_mode(tmp_path: Path) -> None:
    """Every trace x policy x scenario of the autoscaling comparison, on a few simulated minutes: the
    table has every row and the JSON every figure, each a share in [0, 1] or a count (nothing judged)."""
    script = Path(__file__).with_name("run_fleet_sim.py")
    done = subprocess.run(
        [sys.executable, str(script), "--hours-scale", "0.03", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| diurnal", "| bursty", "| step"))]
    assert len(rows) == 2 * 3 * 3
    [path] = tmp_path.glob("fleet-sim-*.json")
    results = json.loads(path.read_text())["results"]
    for block in results.values():
        for cells in block["traces"].values():
            assert set(cells) == {"autoscaler", "hpa", "fixed"}
            for cell in cells.values():
                for share in ("both_all", "slo_all", "cost_all"):
                    assert 0.0 <= cell[share] <= 1.0
                assert cell["tokens_served_millions"] <= cell["tokens_offered_millions"]
                assert cell["usd"] > 0 and cell["scale_events"] >= 0
