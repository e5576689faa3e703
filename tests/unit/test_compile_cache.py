"""Issue 15 item 8: the sidecar reports whether a start found compiled programs and how long it took.

The sidecar scrapes a real HTTP server on loopback that answers with a real vLLM 0.32.0 scrape
(tests/vllm_fixtures.py), with an injected clock; the cache is a real directory.
"""

import asyncio
import dataclasses
from pathlib import Path

import aiohttp
from aiohttp import web
from djm_fixtures import model_with
from tests.vllm_fixtures import scrape_text

from datajax_operator.observe import sidecar_figures
from datajax_operator.plan import OperatorConfig, make_plan
from datajax_operator.status.evaluate import compile_cache
from datajax_operator.status.observations import Observations, SidecarScrape
from datajax_runtime.compile_cache import CacheReport, CacheTracker, count_entries
from datajax_runtime.exporter import render
from datajax_runtime.sidecar import Sidecar, SidecarConfig
from datajax_runtime.window import Pricing


def _gauges(exposition: str) -> dict[str, float]:
    found = {}
    for line in exposition.splitlines():
        if line.startswith("datajax_xla") or line.startswith("datajax_startup"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _run(cache: Path, compile_while_starting: int, answers_after: float) -> dict[str, float]:
    """A sidecar over `cache`: vLLM is down for one scrape, compiles, then answers."""
    clock = _Clock()

    async def scenario() -> dict[str, float]:
        up = False

        async def metrics(_: web.Request) -> web.Response:
            if not up:
                return web.Response(status=503)
            return web.Response(text=scrape_text(1))

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        sidecar = Sidecar(
            SidecarConfig(
                upstream=f"http://127.0.0.1:{port}/metrics",
                pricing=Pricing(chips=8, usd_per_chip_hour=2.7, ceiling_usd_per_million_tokens=3.0),
                xla_cache_dir=str(cache),
            ),
            clock=clock,
        )
        try:
            async with aiohttp.ClientSession() as session:
                await sidecar.scrape_once(session)
                assert "datajax_startup_seconds" not in sidecar.exposition
                for i in range(compile_while_starting):
                    cache.mkdir(parents=True, exist_ok=True)
                    (cache / f"jit_program_{i}").write_bytes(b"x")
                clock.now += answers_after
                up = True
                await sidecar.scrape_once(session)
                clock.now += 60
                await sidecar.scrape_once(session)  # later answers do not move the figures
        finally:
            await runner.cleanup()
        return _gauges(sidecar.exposition)

    return asyncio.run(scenario())


def test_a_cold_start_is_a_miss_with_its_compile_time(tmp_path: Path) -> None:
    gauges = _run(tmp_path / "cache" / "key", compile_while_starting=3, answers_after=1200.0)
    assert gauges == {
        "datajax_xla_cache_hit": 0.0,
        'datajax_xla_cache_entries{when="start"}': 0.0,
        'datajax_xla_cache_entries{when="ready"}': 3.0,
        "datajax_startup_seconds": 1200.0,
    }


def test_a_warm_start_is_a_hit(tmp_path: Path) -> None:
    cache = tmp_path / "key"
    cache.mkdir()
    for i in range(3):
        (cache / f"jit_program_{i}").write_bytes(b"x")
    gauges = _run(cache, compile_while_starting=0, answers_after=90.0)
    assert gauges["datajax_xla_cache_hit"] == 1.0
    assert gauges['datajax_xla_cache_entries{when="ready"}'] == 3.0
    assert gauges["datajax_startup_seconds"] == 90.0


def test_counting_a_missing_directory_is_zero(tmp_path: Path) -> None:
    assert count_entries(tmp_path / "never-created") == 0
    tracker = CacheTracker(str(tmp_path / "never-created"), now=0.0)
    assert not tracker.report.hit and tracker.report.compiled is None


def test_without_a_cache_dir_nothing_is_exported() -> None:
    sidecar = Sidecar(
        SidecarConfig(
            upstream="http://127.0.0.1:9/metrics",
            pricing=Pricing(chips=8, usd_per_chip_hour=2.7, ceiling_usd_per_million_tokens=3.0),
        )
    )
    assert _gauges(sidecar.exposition) == {}


def _sidecar_text(cache: CacheReport | None) -> str:
    sidecar = Sidecar(
        SidecarConfig(
            upstream="http://127.0.0.1:9/metrics",
            pricing=Pricing(chips=8, usd_per_chip_hour=2.7, ceiling_usd_per_million_tokens=3.0),
        )
    )
    return render(dataclasses.replace(sidecar._state(), compile_cache=cache))


def test_the_status_reports_hits_misses_and_the_longest_start() -> None:
    """The operator reads what each slice's sidecar exported into status.compileCache."""
    model = model_with(replicas=3)
    plan = make_plan(model, OperatorConfig())
    texts = [
        _sidecar_text(CacheReport(entries_at_start=0, entries_at_ready=40, startup_seconds=1500.0)),
        _sidecar_text(CacheReport(entries_at_start=40, entries_at_ready=40, startup_seconds=95.0)),
        _sidecar_text(CacheReport(entries_at_start=40, entries_at_ready=None, startup_seconds=None)),
    ]
    scrapes = tuple(SidecarScrape(f"10.0.0.{i}:9400", sidecar_figures(t)) for i, t in enumerate(texts))
    status = compile_cache(plan, Observations(workload=None, sidecars=scrapes))
    assert (status.hits, status.misses, status.startup_seconds) == (2, 1, 1500.0)
    assert status.path == plan.storage.xla_cache_dir and status.volume == "weights"
    silent = compile_cache(
        plan,
        Observations(workload=None, sidecars=(SidecarScrape("x", sidecar_figures(_sidecar_text(None))),)),
    )
    assert (silent.hits, silent.misses, silent.startup_seconds) == (None, None, None)
