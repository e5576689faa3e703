"""One loopback HTTP server standing for the sidecars of many models (make bench, traffic scenario).

Every scrape gets the exposition a real ``datajax-sidecar serve`` renders (``datajax_runtime.exporter``)
for a slice under steady traffic: 8 v6e chips at $2.70 (the plan's $21.60/h), ~4,000 tokens/s
($1.50/Mtok, under the $3 ceiling), each figure jittered by up to ``JITTER`` per scrape as a live
window's figures move. The models' EndpointSlices list one stand-in address (the API server refuses
loopback addresses there), which the operator under test dials here (``bench_operator.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from aiohttp import web

from datajax_operator.api.tpu import CATALOG
from datajax_runtime.exporter import ExportState, render
from datajax_runtime.window import Figures, Pricing

STAND_IN = "198.51.100.1"
"""The address every model's EndpointSlice lists (TEST-NET-2, RFC 5737)."""
JITTER = 0.01
PRICING = Pricing(chips=8, usd_per_chip_hour=CATALOG["v6e"].prices["on-demand"])  # the catalog's $2.70


def _figures(rng: random.Random) -> Figures:
    def near(value: float) -> float:
        return value * (1 + rng.uniform(-JITTER, JITTER))

    prompt, generation = near(3000.0), near(1000.0)
    usd_per_hour = PRICING.usd_per_hour
    return Figures(
        window_seconds=600.0,
        requests=near(12000.0),
        requests_per_second=near(20.0),
        p95_e2e_latency_seconds=near(1.8),
        p95_ttft_seconds=near(0.2),
        p95_itl_seconds=near(0.02),
        prefix_cache_hit_ratio=near(0.4),
        prompt_tokens_per_second=prompt,
        generation_tokens_per_second=generation,
        usd_per_hour=usd_per_hour,
        usd_per_million_tokens=usd_per_hour / ((prompt + generation) * 3600) * 1e6,
        breakeven_tokens_per_second=PRICING.breakeven_tokens_per_second,
    )


@dataclass
class SidecarFarm:
    """Start with ``await farm.start()``; ``scrapes`` counts the requests served."""

    scrapes: int = 0
    port: int = 0
    _rng: random.Random = field(default_factory=lambda: random.Random(17))
    _runner: web.AppRunner | None = None

    async def _metrics(self, _: web.Request) -> web.Response:
        self.scrapes += 1
        state = ExportState(
            figures=_figures(self._rng),
            pricing=PRICING,
            upstream_up=True,
            scrape_errors=0,
            slo_p95_seconds=None,
            plan_status_configured=False,
            plan=None,
            model="bench",
        )
        return web.Response(text=render(state), content_type="text/plain")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def endpoint_slice(namespace: str, service: str, port: int) -> dict[str, object]:
    """The EndpointSlice the endpoints controller would write for one serving pod of the Service."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-bench",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "metrics", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [STAND_IN], "conditions": {"ready": True}}],
    }
