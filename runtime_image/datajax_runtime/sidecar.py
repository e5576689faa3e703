"""The metrics sidecar: scrape vLLM, keep a ring of scrapes, serve `datajax_*` figures.

It must never crash on its upstream: vLLM spends minutes compiling before it answers, restarts,
and could one day send text we cannot read. Every failure is counted, logged once per scrape with
what was wrong, and turns `datajax_upstream_up` to 0; the ring keeps expiring on the clock, so
figures from a vLLM that went away age out of the window instead of being reported forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from datajax_runtime.compile_cache import CacheTracker
from datajax_runtime.exporter import ExportState, render
from datajax_runtime.exposition import parse
from datajax_runtime.plan_status import PlanStatus, read_plan_status
from datajax_runtime.ring import ScrapeRing
from datajax_runtime.settings import SettingsError, parse_settings, resolve
from datajax_runtime.window import Pricing, figures, snapshot

__all__ = ["Sidecar", "SidecarConfig", "serve"]

log = logging.getLogger("datajax_runtime.sidecar")


@dataclass(frozen=True)
class SidecarConfig:
    upstream: str
    pricing: Pricing
    window_seconds: float = 600.0
    interval_seconds: float = 5.0
    port: int = 9400
    host: str = "0.0.0.0"
    slo_p95_seconds: float | None = None
    plan_status_path: str | None = None
    model: str = ""
    settings_path: str | None = None
    """A JSON settings file re-read every interval; its keys override ``flag_settings``."""
    flag_settings: Mapping[str, Any] = field(default_factory=dict)
    """The command-line values behind pricing/window/SLO, keyed as in the settings file."""
    xla_cache_dir: str | None = None
    """vLLM's XLA compile cache directory (mounted read-only), for the cache hit and start-up figures."""


class Sidecar:
    """State and one scrape step; `serve()` adds the timer and the HTTP endpoints around it.

    `clock` is injectable so tests can age the window deterministically; it must be monotonic.
    """

    def __init__(self, config: SidecarConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._ring = ScrapeRing(config.window_seconds)
        self._up = False
        self._errors = 0
        self._plan: PlanStatus | None = None
        self._plan_mtime: float | None = None
        self.pricing = config.pricing
        self.slo_p95_seconds = config.slo_p95_seconds
        self._settings_text: str | None = None
        self.scrapes = 0
        self._cache = CacheTracker(config.xla_cache_dir, clock()) if config.xla_cache_dir else None
        self.exposition = render(self._state())

    async def scrape_once(self, session: aiohttp.ClientSession) -> None:
        """Fetch, parse and fold one scrape into the window; record failures, never raise them."""
        now = self._clock()
        self._refresh_settings()
        try:
            async with session.get(self.config.upstream) as response:
                if response.status != 200:
                    raise _ScrapeFailedError(f"HTTP {response.status} from {self.config.upstream}")
                text = await response.text()
            self._ring.add(snapshot(parse(text), now))
            self._up = True
            if self._cache is not None:
                self._cache.upstream_answered(now)
        except _ScrapeFailedError as err:
            self._fail(str(err))
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            self._fail(f"upstream {self.config.upstream} unreachable: {err!r}")
        except ValueError as err:  # ExpositionError and friends: the text is not what vLLM sends
            self._fail(f"malformed exposition from {self.config.upstream}: {err}")
        self._ring.expire(now)
        self._refresh_plan()
        self.scrapes += 1
        self.exposition = render(self._state())

    def _fail(self, message: str) -> None:
        self._up = False
        self._errors += 1
        log.warning("scrape failed: %s", message)

    def _refresh_settings(self) -> None:
        """Apply the settings file when its text changed; a bad file is logged and the settings in
        force are kept (the kubelet replaces a mounted ConfigMap atomically, so a bad file is a bad
        ConfigMap, not a half-written one)."""
        path = self.config.settings_path
        if path is None:
            return
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            if self._settings_text is not None:
                log.warning("cannot read settings %s: %s; keeping the settings in force", path, err)
            self._settings_text = None
            return
        if text == self._settings_text:
            return
        self._settings_text = text
        try:
            current = resolve(self.config.flag_settings, parse_settings(text, path))
        except SettingsError as err:
            log.warning("settings %s not applied: %s", path, err)
            return
        self._ring.window_seconds = current.window_seconds
        if (current.pricing, current.slo_p95_seconds) != (self.pricing, self.slo_p95_seconds):
            log.info("settings %s applied: %s", path, current)
        self.pricing = current.pricing
        self.slo_p95_seconds = current.slo_p95_seconds

    def _refresh_plan(self) -> None:
        path = self.config.plan_status_path
        if path is None:
            return
        try:
            mtime = Path(path).stat().st_mtime
        except FileNotFoundError:
            self._plan, self._plan_mtime = None, None
            return
        if mtime == self._plan_mtime:
            return
        try:
            self._plan = read_plan_status(path)
            self._plan_mtime = mtime
        except (OSError, ValueError, TypeError) as err:
            log.warning("cannot read plan status %s: %s", path, err)
            self._plan = None
            return
        devices = self._plan.devices if self._plan is not None else None
        if devices is not None and devices.get("ok") is not True:
            # Logged when the status file changes, not every scrape: the gauge carries it meanwhile.
            log.error("TPU devices do not match the plan: %s", devices.get("message", ""))

    def _state(self) -> ExportState:
        return ExportState(
            figures=figures(self._ring.window(), self.pricing),
            pricing=self.pricing,
            upstream_up=self._up,
            scrape_errors=self._errors,
            slo_p95_seconds=self.slo_p95_seconds,
            plan_status_configured=self.config.plan_status_path is not None,
            plan=self._plan,
            model=self.config.model,
            cost_window_seconds=self._ring.window_seconds,
            compile_cache=self._cache.report if self._cache is not None else None,
        )

    def app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(
                body=self.exposition.encode("utf-8"),
                headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
            )

        async def healthz(_: web.Request) -> web.Response:
            # Healthy while the loop runs: vLLM being down is reported by datajax_upstream_up,
            # not by restarting the sidecar.
            return web.Response(text="ok\n")

        application = web.Application()
        application.router.add_get("/metrics", metrics)
        application.router.add_get("/healthz", healthz)
        return application


class _ScrapeFailedError(Exception):
    """A scrape that reached the upstream but got no exposition back."""


async def serve(config: SidecarConfig, *, started: asyncio.Event | None = None) -> None:
    """Run the sidecar until cancelled: HTTP endpoints plus a scrape every interval."""
    sidecar = Sidecar(config)
    runner = web.AppRunner(sidecar.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    log.info(
        "serving on %s:%d, scraping %s every %gs",
        config.host,
        config.port,
        config.upstream,
        config.interval_seconds,
    )
    if started is not None:
        started.set()
    timeout = aiohttp.ClientTimeout(total=max(0.05, min(config.interval_seconds, 10.0)))
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            next_tick = time.monotonic()
            while True:
                await sidecar.scrape_once(session)
                next_tick += config.interval_seconds
                delay = next_tick - time.monotonic()
                if delay < 0:  # a slow scrape: skip the missed ticks rather than bunching up
                    next_tick = time.monotonic()
                    delay = 0.0
                await asyncio.sleep(delay)
    finally:
        await runner.cleanup()
