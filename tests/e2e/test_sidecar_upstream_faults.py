"""The sidecar's side: its vLLM hangs (accepts, never answers) or stalls mid-body. Each scrape must
give up within the sidecar's interval, so scrapes keep their cadence, every failure is counted, old
figures age out of the window instead of being served forever, /metrics keeps answering at once, and
the sidecar recovers when vLLM does. The real `datajax-sidecar serve` process, a 1 s interval and a
3 s window; vLLM is a ``FaultServer`` on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_server import FaultServer
from harness import read_metrics, wait_for

from datajax_devtools.localcluster import free_port
from vllm_fixtures import scrape_text

pytestmark = pytest.mark.e2e
INTERVAL = 1.0


def test_a_hanging_vllm_costs_each_scrape_at_most_its_interval(tmp_path: Path) -> None:
    upstream = FaultServer("127.0.0.1", 0).start()
    healthy = FaultServer.serving(scrape_text(3).encode())
    upstream.fault = healthy
    port = free_port()
    log_path = tmp_path / "sidecar.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "datajax_runtime.cli", "serve",
             "--upstream", f"http://127.0.0.1:{upstream.port}/metrics", "--host", "127.0.0.1",
             "--port", str(port), "--chips", "8", "--usd-per-chip-hour", "2.7", "--ceiling", "3",
             "--basis", "total", "--window", "3s", "--interval", f"{INTERVAL:g}s"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/metrics"

    def figures() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """/metrics, which must answer at once whatever vLLM does."""
        assert process.poll() is None, "the sidecar exited"
        started = time.monotonic()
        metrics = read_metrics(url)
        assert time.monotonic() - started < 0.5, "the sidecar's /metrics waited on its upstream"
        return metrics

    def up() -> float:
        return figures()[("datajax_upstream_up", ())]

    def errors() -> float:
        return figures()[("datajax_scrape_errors_total", ())]

    try:
        wait_for(lambda: _listening(url) and up() == 1.0, 30, "the sidecar scraping vLLM")
        wait_for(lambda: figures()[("datajax_window_seconds", ())] > 0, 10, "a window")
        for fault in (upstream.hang, upstream.stall):
            upstream.fault = fault
            wait_for(lambda: up() == 0.0, 3 * INTERVAL + 2, f"{fault.__name__}: upstream down")
            before, t0 = errors(), time.monotonic()
            time.sleep(5 * INTERVAL)
            rate = (errors() - before) / (time.monotonic() - t0)
            # a scrape that waited longer than the interval would count fewer than one failure each
            assert rate >= 0.7 / INTERVAL, f"{fault.__name__}: {rate:.2f} failed scrapes/s"
            # what vLLM served before is gone from the window: no stale figures
            assert figures()[("datajax_window_seconds", ())] == 0.0, fault.__name__
            upstream.fault = healthy
            wait_for(lambda: up() == 1.0, 3 * INTERVAL + 2, f"{fault.__name__}: recovery")
    finally:
        process.terminate()
        process.wait(10)
        upstream.stop()
    output = log_path.read_text()
    assert "Traceback" not in output, output[-3000:]
    assert "scrape failed" in output


def _listening(url: str) -> bool:
    try:
        read_metrics(url)
    except OSError:
        return False
    return True
