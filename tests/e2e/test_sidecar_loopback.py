"""The sidecar over loopback against an HTTP server replaying real vLLM scrapes.

Sequence (both tests): the four real scrapes in order, then the upstream goes down, then it answers
with malformed text, then it recovers. The sidecar's exposition is read back over HTTP with
prometheus_client's text parser at each step.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from datajax_runtime.plan_status import PlanStatus, write_plan_status
from datajax_runtime.sidecar import Sidecar, SidecarConfig
from datajax_runtime.window import Pricing

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vllm_fixtures import scrape_text, scrape_time

pytestmark = pytest.mark.e2e
MALFORMED = 'vllm:num_requests_running{engine="0" 1.0\n'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Upstream:
    """A vLLM stand-in on 127.0.0.1 that serves whatever text the test puts up, or is down."""

    def __init__(self, port: int, texts: list[str]) -> None:
        self.port = port
        self.texts = texts  # served in order; the last one repeats
        self.served = 0
        self._runner: web.AppRunner | None = None

    async def metrics(self, _: web.Request) -> web.Response:
        text = self.texts[min(self.served, len(self.texts) - 1)]
        self.served += 1
        return web.Response(text=text, content_type="text/plain")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"


def read_back(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


async def fetch(
    session: aiohttp.ClientSession, url: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with session.get(url) as response:
        assert response.status == 200
        return read_back(await response.text())


def test_sidecar_step_by_step(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """In-process, one scrape per step and a controlled clock, so every figure is exact."""
    asyncio.run(_step_by_step(tmp_path, caplog))


async def _step_by_step(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    upstream = Upstream(free_port(), [scrape_text(i) for i in range(4)])
    await upstream.start()
    status = tmp_path / "plan-status.json"
    write_plan_status(
        status,
        PlanStatus(
            True,
            "Registered",
            "ok",
            model="org/m",
            architecture="Arch",
            implementation="p.m:C",
            mesh="data=1,model=8",
            hash="sha256:abc",
            bundle_version=1,
        ),
    )
    now = [0.0]
    pricing = Pricing(chips=8, usd_per_chip_hour=2.7, ceiling_usd_per_million_tokens=3.0)
    config = SidecarConfig(
        upstream=upstream.url,
        pricing=pricing,
        window_seconds=30.0,
        interval_seconds=5.0,
        slo_p95_seconds=0.5,
        plan_status_path=str(status),
        model="tiny",
    )
    sidecar = Sidecar(config, clock=lambda: now[0])
    runner = web.AppRunner(sidecar.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def step(at: float) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                now[0] = at
                await sidecar.scrape_once(session)
                return await fetch(session, metrics_url)

            async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert health.status == 200 and (await health.text()).strip() == "ok"

            # 1. the real scrapes, at the times vLLM's were taken
            start = scrape_time(0)
            m = await step(0.0)
            assert value(m, "datajax_upstream_up") == 1.0
            assert value(m, "datajax_window_seconds") == 0.0
            assert math.isnan(value(m, "datajax_latency_p95_seconds", kind="e2e"))
            for index in (1, 2, 3):
                m = await step(scrape_time(index) - start)
            seconds = scrape_time(3) - start
            assert value(m, "datajax_window_seconds") == pytest.approx(seconds)
            assert value(m, "datajax_tokens_per_second", kind="prompt") == pytest.approx(58526 / seconds)
            assert value(m, "datajax_tokens_per_second", kind="generation") == pytest.approx(12960 / seconds)
            assert value(m, "datajax_requests_per_second") == pytest.approx(236 / seconds)
            assert value(m, "datajax_latency_p95_seconds", kind="e2e") == pytest.approx(0.69875)
            assert value(m, "datajax_prefix_cache_hit_ratio") == pytest.approx(44800 / 58526)
            assert value(m, "datajax_cost_usd_per_hour") == pytest.approx(21.6)
            tokens_per_second = (58526 + 12960) / seconds
            assert value(m, "datajax_cost_usd_per_million_tokens", basis="total") == pytest.approx(
                21.6 / (tokens_per_second * 3600) * 1e6
            )
            assert value(m, "datajax_cost_ceiling_usd_per_million_tokens") == 3.0
            assert value(m, "datajax_breakeven_tokens_per_second") == pytest.approx(2000.0)
            assert value(m, "datajax_latency_slo_seconds") == 0.5
            assert value(m, "datajax_scrape_errors_total") == 0.0
            assert value(m, "datajax_plan_registered") == 1.0
            info = value(
                m,
                "datajax_plan_info",
                model="tiny",
                architecture="Arch",
                implementation="p.m:C",
                mesh="data=1,model=8",
                hash="sha256:abc",
                reason="Registered",
                bundle_version="1",
            )
            assert info == 1.0

            # 2. upstream down: up 0, an error counted, figures kept while still inside the window ...
            await upstream.stop()
            m = await step(20.0)
            assert value(m, "datajax_upstream_up") == 0.0
            assert value(m, "datajax_scrape_errors_total") == 1.0
            assert value(m, "datajax_requests_per_second") == pytest.approx(236 / seconds)
            # ... and aged out once the window has passed them
            m = await step(50.0)
            assert value(m, "datajax_scrape_errors_total") == 2.0
            assert value(m, "datajax_window_seconds") == 0.0
            assert math.isnan(value(m, "datajax_requests_per_second"))
            assert math.isnan(value(m, "datajax_cost_usd_per_million_tokens", basis="total"))

            # 3. malformed text: counted, logged with the line and what was wrong
            upstream.texts = [MALFORMED]
            await upstream.start()
            with caplog.at_level(logging.WARNING, logger="datajax_runtime.sidecar"):
                m = await step(55.0)
            assert value(m, "datajax_upstream_up") == 0.0
            assert value(m, "datajax_scrape_errors_total") == 3.0
            assert "malformed exposition" in caplog.text and "line 1: malformed label set" in caplog.text

            # 4. recovery: up again; a quiet window has no latency (NaN) and no tokens (0)
            upstream.texts = [scrape_text(3)]
            m = await step(60.0)
            assert value(m, "datajax_upstream_up") == 1.0
            m = await step(65.0)
            assert value(m, "datajax_window_seconds") == 5.0
            assert value(m, "datajax_tokens_per_second", kind="prompt") == 0.0
            assert math.isnan(value(m, "datajax_latency_p95_seconds", kind="e2e"))
            assert value(m, "datajax_scrape_errors_total") == 3.0
    finally:
        await runner.cleanup()
        await upstream.stop()


def test_serve_command_over_loopback(tmp_path: Path) -> None:
    """The real `datajax-sidecar serve` process, a fast interval and a 2 s window."""
    asyncio.run(_serve_command(tmp_path))


async def _serve_command(tmp_path: Path) -> None:
    upstream = Upstream(free_port(), [scrape_text(i) for i in range(4)])
    await upstream.start()
    port = free_port()
    log = (tmp_path / "sidecar.log").open("w+")
    command = [
        sys.executable,
        "-m",
        "datajax_runtime.cli",
        "serve",
        "--upstream",
        upstream.url,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chips",
        "4",
        "--usd-per-chip-hour",
        "1.2",
        "--ceiling",
        "3",
        "--basis",
        "output",
        "--window",
        "2s",
        "--interval",
        "50ms",
        "--plan-status",
        str(tmp_path / "absent.json"),
    ]
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:

            async def until(check: Callable[[dict[Any, float]], bool], what: str) -> dict[Any, float]:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    assert process.poll() is None, "sidecar exited"
                    try:
                        metrics = await fetch(session, url)
                        if check(metrics):
                            return metrics
                    except aiohttp.ClientError:
                        pass  # not listening yet
                    await asyncio.sleep(0.05)
                raise AssertionError(f"timed out waiting for {what}")

            def replayed(m: dict[Any, float]) -> bool:
                requests = value(m, "datajax_requests_per_second") * value(m, "datajax_window_seconds")
                return (
                    value(m, "datajax_upstream_up") == 1.0
                    and not math.isnan(requests)
                    and round(requests) == 236
                )

            m = await until(replayed, "all four scrapes in the window")
            generated = value(m, "datajax_tokens_per_second", kind="generation") * value(
                m, "datajax_window_seconds"
            )
            assert round(generated) == 12960
            assert value(m, "datajax_latency_p95_seconds", kind="e2e") == pytest.approx(0.69875)
            assert value(m, "datajax_cost_usd_per_hour") == pytest.approx(4.8)
            assert ("datajax_cost_usd_per_million_tokens", (("basis", "output"),)) in m
            assert value(m, "datajax_plan_registered") == 0.0  # the plugin has written nothing

            await upstream.stop()
            m = await until(lambda m: value(m, "datajax_upstream_up") == 0.0, "upstream down")
            errors = value(m, "datajax_scrape_errors_total")
            assert errors >= 1
            await until(lambda m: value(m, "datajax_window_seconds") == 0.0, "figures to age out")

            upstream.texts = [MALFORMED]
            await upstream.start()
            served = upstream.served
            m = await until(lambda m: upstream.served > served + 1, "malformed scrapes")
            assert value(m, "datajax_upstream_up") == 0.0
            assert value(m, "datajax_scrape_errors_total") > errors

            upstream.texts = [scrape_text(3)]
            await until(lambda m: value(m, "datajax_upstream_up") == 1.0, "recovery")
            async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert health.status == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
        await upstream.stop()
    log.seek(0)
    output = log.read()
    assert "line 1: malformed label set" in output
    assert "unreachable" in output
