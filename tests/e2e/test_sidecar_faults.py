"""Broken sidecar endpoints, as the operator scrapes them: figures stay correct or Unknown, never wrong.

A model pays for every slice it runs, whether or not that slice's sidecar can be read. So the rule
tested here (docs/cost-model.md, "Across replicas"): a slice whose sidecar fails still counts in
$/hour, at the plan's price of one slice, and the traffic figures ($/Mtok, tokens/s, p95s, prefix
hits) are Unknown while any slice cannot be read, or has just restarted and has no window yet,
because a sum or maximum over some slices is a bound, not the model's figure. Leaving the broken
slice out (as the operator did before this test) made $/Mtok look cheaper than it was.

The broken endpoints are ``fault_server.FaultServer`` on 127.0.0.N:9400 (listed as 198.51.100.N, see
harness.py); the healthy ones are real sidecars. A watcher thread reads the model's status all along
and every figure it ever saw is checked, not only the last one. The operator's log records are
captured: no traceback, whatever the endpoint does.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fault_server import Fault, FaultServer
from harness import OBSERVE_SECONDS, SIDECAR_PORT, Served, Slice, wait_for
from test_cost_enforcement import CHEAP, DEAR, settled, spec

from vllm_fixtures import scrape_text

pytestmark = pytest.mark.e2e
Serve = Callable[..., Served]
SLICE_USD_PER_HOUR = 21.6  # v6e 2x4 on demand: 8 chips x $2.70


class Watcher(threading.Thread):
    """Reads the model's status.metrics every 0.2 s; keeps every distinct one it saw."""

    def __init__(self, model: Served) -> None:
        super().__init__(name=f"watch {model.name}", daemon=True)
        self.model = model
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            metrics = self.model.status().get("metrics")
            if metrics and (not self.seen or self.seen[-1][1] != metrics):
                self.seen.append((time.monotonic(), metrics))

    def since(self, moment: float) -> list[dict[str, Any]]:
        return [m for t, m in self.seen if t >= moment]

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.join(5)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self) -> list[str]:
        return [
            f"{r.name}: {r.getMessage()}"
            for r in self.records
            if r.exc_info is not None or r.levelno >= logging.ERROR
        ]


@pytest.fixture
def operator_log() -> Iterator[Records]:
    """Every log record of the process (the operator runs in it) while the test runs."""
    handler = Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def exposition(s: Slice) -> str:
    with urllib.request.urlopen(s.metrics_url, timeout=5) as response:
        return str(response.read().decode())


def last_line_cut(text: str, name: str) -> bytes:
    """The exposition with ``name``'s sample moved last and cut after its value's first digit, as a
    connection cut mid-body would leave it: parseable, complete-looking, wrong."""
    lines = text.splitlines()
    sample = next(line for line in lines if line.startswith(name + " "))
    lines.remove(sample)
    return ("\n".join(lines) + "\n" + sample[: len(name) + 2]).encode()


def faults(healthy: Slice, broken: FaultServer) -> dict[str, Fault]:
    """Every way the broken endpoint fails, by name (the name is what the test reports)."""
    text = exposition(healthy)
    body = text.encode()
    lines = text.splitlines()
    impossible = "\n".join(
        line.replace(line.split(" ")[-1], "-4000.0")
        if line.startswith('datajax_tokens_per_second{kind="prompt"}')
        else line
        for line in lines
    )
    return {
        "hang": broken.hang,
        "reset": broken.reset,
        "garbage": FaultServer.garbage(),
        "vllm-exposition": FaultServer.serving(scrape_text(3).encode()),
        "empty": FaultServer.serving(b""),
        "cut-at-a-line": FaultServer.serving("\n".join(lines[: len(lines) // 2]).encode() + b"\n"),
        "cut-short-of-its-length": FaultServer.serving(body[: len(body) // 2], length=len(body)),
        "unframed-cut-mid-figure": FaultServer.serving(
            last_line_cut(text, "datajax_cost_usd_per_hour"), framed=False
        ),
        "impossible-figures": FaultServer.serving(impossible.encode()),
        "endless-body": broken.flood,
    }


def test_a_broken_endpoint_keeps_paying_and_makes_the_traffic_unknown(
    serve: Serve, operator_log: Records
) -> None:
    model = serve("faulty", spec(replicas=3, cost={"action": "ScaleDown"}))
    slices = model.start_slices(2, pods=3)
    # the third pod's "sidecar" is the fault server, on that pod's address
    [(pod, pod_ip)] = model.unserved.items()
    broken = FaultServer(model.cluster.loopback_for(pod_ip), SIDECAR_PORT).start()
    try:
        # Cheap traffic on the two readable slices: dropping the third from $/hour would read
        # $0.96/Mtok, under the ceiling, when the model really costs a third more than that.
        for s in slices:
            s.traffic(CHEAP)
        wait_for(lambda: all(settled(s) for s in slices), 30, "the healthy windows to fill")
        tried: dict[str, str] = {}
        with Watcher(model) as watcher:
            for name, fault in faults(slices[0], broken).items():
                broken.fault = fault
                since = time.monotonic()
                connections = broken.connections
                # the operator scraped it at least three times under this fault
                wait_for(lambda c=connections: broken.connections >= c + 3, 20, f"{name}: three scrapes")
                condition = model.condition("MetricsAvailable")
                assert condition["status"] == "False" and condition["reason"] == "ScrapeFailed", (
                    name,
                    condition,
                )
                assert f"{pod_ip}:{SIDECAR_PORT}" in condition["message"], (name, pod, condition)
                tried[name] = condition["message"].split(": ", 1)[-1]
                for metrics in watcher.since(since + OBSERVE_SECONDS):
                    assert metrics["costUSDPerHour"] == pytest.approx(3 * SLICE_USD_PER_HOUR), (name, metrics)
                    assert metrics["breakEvenTokensPerSecond"] == pytest.approx(3 * 2000.0), (name, metrics)
                    for unknown in ("costUSDPerMillionTokens", "tokensPerSecond", "p95LatencySeconds"):
                        assert unknown not in metrics, (name, metrics)
            # never a figure from two slices only, at any moment of the run
            for metrics in watcher.since(0):
                assert metrics["costUSDPerHour"] == pytest.approx(3 * SLICE_USD_PER_HOUR), metrics
        print(f"{len(tried)} faults tried:", *(f"{k}: {v}" for k, v in tried.items()), sep="\n  ")
        breached = model.condition("CostCeilingBreached")
        assert breached["status"] == "Unknown" and breached["reason"] == "NoMetrics", breached
        assert model.replicas() == 3  # no figure, no action
        assert all(s.process.poll() is None for s in slices)
    finally:
        broken.stop()
    assert operator_log.tracebacks() == []


def test_a_restarted_sidecar_never_makes_the_model_look_dearer(serve: Serve, operator_log: Records) -> None:
    """The busy slice's sidecar restarts (its vLLM keeps serving): until its new window holds two
    scrapes it knows no rate. Counted as 0 tokens/s, the model would look ten times dearer than it is
    ($43.20/h for the quiet slice's 500 tokens/s: $24/Mtok); the figures must be Unknown instead."""
    model = serve("restart", spec(replicas=2))
    busy, quiet = model.start_slices(2)
    busy.traffic(CHEAP)
    quiet.traffic(DEAR)
    wait_for(lambda: settled(busy) and settled(quiet), 30, "both windows to fill")
    true_cost = 2 * SLICE_USD_PER_HOUR / ((5000 + 500) * 3600) * 1e6  # $2.18/Mtok
    wait_for(
        lambda: (model.status().get("metrics") or {}).get("costUSDPerMillionTokens"), 10, "a $/Mtok figure"
    )
    with Watcher(model) as watcher:
        # a slower interval for the restarted sidecar: its empty window lasts four observations
        busy.restart("--interval", "4s")
        restarted = time.monotonic()
        wait_for(
            lambda: any("costUSDPerMillionTokens" in m for m in watcher.since(restarted + 4)),
            30,
            "a $/Mtok figure from the new window",
        )
    for metrics in watcher.since(0):
        assert metrics["costUSDPerHour"] == pytest.approx(2 * SLICE_USD_PER_HOUR), metrics
        if "costUSDPerMillionTokens" in metrics:
            assert metrics["costUSDPerMillionTokens"] == pytest.approx(true_cost, rel=0.1), metrics
    unknown = [m for m in watcher.since(restarted) if "costUSDPerMillionTokens" not in m]
    assert unknown, "the restart was never observed"
    print(f"restart: {len(unknown)} status(es) with $/Mtok unknown, none wrong")
    assert operator_log.tracebacks() == []
