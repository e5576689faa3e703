"""Simulated vLLM servers on loopback: `/metrics` from the traffic model, `/health` always OK.

Every server of a demo (or a test) runs on one asyncio loop in one background thread, so starting
and stopping a replica is cheap and nothing outlives :meth:`SimulatedVllmFleet.close`. A server binds
its own loopback address (127.0.0.x), the way each pod has its own IP, so every replica can use the
same port, as a Service's EndpointSlice requires.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from datajax_devtools.demo.traffic import SimulatedReplica, TrafficModel

__all__ = ["SimulatedVllmFleet"]

T = TypeVar("T")


class SimulatedVllmFleet:
    """vLLM-format metrics servers, one per replica, driven by one :class:`TrafficModel`."""

    def __init__(self, traffic: TrafficModel, clock: Callable[[], float] = time.time) -> None:
        self.traffic = traffic
        self.clock = clock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="simulated-vllm", daemon=True)
        self._thread.start()
        self._runners: dict[str, tuple[web.AppRunner, SimulatedReplica]] = {}

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def start(self, name: str, served_name: str, host: str, port: int) -> SimulatedReplica:
        """Start a replica's server at ``host:port`` and route its share of the traffic to it."""
        replica = self.traffic.new_replica(name, served_name, self.clock())

        async def metrics(_: web.Request) -> web.Response:
            text = self.traffic.scrape(replica, self.clock())
            return web.Response(text=text, content_type="text/plain", charset="utf-8")

        async def health(_: web.Request) -> web.Response:
            return web.Response(text="")

        async def serve() -> web.AppRunner:
            app = web.Application()
            app.router.add_get("/metrics", metrics)
            app.router.add_get("/health", health)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
            return runner

        runner = self._call(serve())
        self._runners[name] = (runner, replica)
        self.traffic.attach(replica, self.clock())
        return replica

    def stop(self, name: str) -> None:
        """Take a replica out of the traffic and stop its server."""
        entry = self._runners.pop(name, None)
        self.traffic.detach(name, self.clock())
        if entry is not None:
            self._call(entry[0].cleanup())

    def replicas(self) -> list[SimulatedReplica]:
        return [replica for _, replica in self._runners.values()]

    def close(self) -> None:
        for name in list(self._runners):
            self.stop(name)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
