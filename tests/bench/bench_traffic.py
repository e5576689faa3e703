"""Steady state under live sidecars (make bench, traffic scenario): what a settled operator costs the
API server and etcd per model per minute while every model's sidecars serve figures that move.

For each size N and each operator (this checkout, and ``--baseline`` another checkout's code run
through the same entry point), N models are created into a fresh namespace together with one
EndpointSlice each, listing the stand-in sidecar address that the operator dials on the loopback
farm (``sidecar_farm.py``: one server standing for every sidecar). Once every model shows figures in
its status, and ``settle`` seconds more, a window of ``window`` seconds counts:

* API requests by verb and resource (the API server's ``apiserver_request_total``);
* writes seen by watches on the models, their children and Events (each a changed resourceVersion,
  i.e. an etcd write): status writes are the ones that matter here;
* the operator's CPU (share of one core), RSS, reconcile passes, and the farm's scrapes.

The models use the default 10 m cost window and serve under the ceiling, so no condition changes in
the window: the issue's target is at most one status write per model per cost window.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apiclient import READ_VERBS, WRITE_VERBS, Api, Resource, bounded
from bench_reconcile import CREATES_IN_FLIGHT, MODELS, Operator, Tracker, model_document, run_command
from procs import Process, cpu_seconds, rss_bytes, wait_healthy
from sidecar_farm import SidecarFarm, endpoint_slice

from datajax_devtools.localcluster import free_port
from datajax_operator.render.names import base_name

ENTRY = Path(__file__).with_name("bench_operator.py")
ENDPOINT_SLICES = Resource("/apis/discovery.k8s.io/v1", "endpointslices")
COUNTED = frozenset(
    {"datajaxmodels", "deployments", "leaderworkersets", "services", "configmaps", "endpointslices", "events"}
)


@dataclass(frozen=True)
class TrafficSettings:
    sizes: tuple[int, ...] = (100, 500, 1000)
    window_seconds: float = 120.0
    settle_seconds: float = 30.0
    observe_interval: str = "30s"
    baseline: Path | None = None
    """A checkout whose ``operator/`` and ``runtime_image/`` hold the code to compare with."""
    timeout_seconds: float = 600.0

    @classmethod
    def smoke(cls) -> TrafficSettings:
        return cls(sizes=(3,), window_seconds=4.0, settle_seconds=1.0, observe_interval="1s")


async def _start(
    variant: str, namespace: str, kubeconfig: Path, workdir: Path, settings: TrafficSettings
) -> Operator:
    liveness, metrics = free_port(), free_port()
    env = {}
    if variant == "baseline":
        assert settings.baseline is not None
        code = [settings.baseline / "operator", settings.baseline / "runtime_image"]
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in code)
    process = Process(
        run_command(
            [sys.executable, str(ENTRY)],
            namespace,
            kubeconfig,
            liveness=liveness,
            metrics=metrics,
            observe_interval=settings.observe_interval,
        ),
        workdir / f"traffic-{variant}-{namespace}.log",
        env=env,
    )
    await wait_healthy(process, liveness)
    return Operator(process, liveness, metrics)


def _has_figures(tracker: Tracker, name: str) -> bool:
    model = tracker._models.get(name)
    metrics = ((model or {}).get("status") or {}).get("metrics") or {}
    return "costUSDPerMillionTokens" in metrics


async def scenario(
    api: Api,
    farm: SidecarFarm,
    variant: str,
    n: int,
    *,
    kubeconfig: Path,
    workdir: Path,
    settings: TrafficSettings,
) -> dict[str, Any]:
    namespace = f"traffic{variant[:4]}-{n}-{uuid.uuid4().hex[:5]}"
    await api.create_namespace(namespace)
    operator = await _start(variant, namespace, kubeconfig, workdir, settings)
    tracker = Tracker(api, namespace, needs_children=True)
    try:
        await tracker.start()
        names = [f"m{i:05d}" for i in range(n)]

        def job(i: int) -> Any:
            async def run() -> None:
                doc = model_document(i, namespace)
                await api.create(MODELS, namespace, doc)
                slice_ = endpoint_slice(namespace, base_name(doc["metadata"]["name"]), farm.port)
                await api.create(ENDPOINT_SLICES, namespace, slice_)

            return run

        await bounded(CREATES_IN_FLIGHT, [job(i) for i in range(n)])
        deadline = time.monotonic() + settings.timeout_seconds
        while not all(_has_figures(tracker, name) for name in names):
            operator.process.check_alive()
            if time.monotonic() > deadline:
                missing = sum(1 for name in names if not _has_figures(tracker, name))
                raise TimeoutError(f"{variant} N={n}: {missing} models without figures")
            await asyncio.sleep(1.0)
        await asyncio.sleep(settings.settle_seconds)

        pid = operator.process.pid
        requests_before = await api.requests_served(COUNTED, WRITE_VERBS | READ_VERBS)
        metrics_before = await operator.metrics()
        scrapes_before, cpu_before, started = farm.scrapes, cpu_seconds(pid), time.monotonic()
        tracker.writes.clear()
        tracker.counting = True
        await asyncio.sleep(settings.window_seconds)
        tracker.counting = False
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
        requests_after = await api.requests_served(COUNTED, WRITE_VERBS | READ_VERBS)
        metrics_after = await operator.metrics()
        per = 60.0 / elapsed / n  # per model per minute
        requests = {
            k: round((v - requests_before.get(k, 0.0)) * per, 3)
            for k, v in sorted(requests_after.items())
            if v != requests_before.get(k, 0.0)
        }
        writes: dict[str, float] = {}
        for resource, kind, what in tracker.writes:
            key = f"{resource} {kind} ({what})"
            writes[key] = writes.get(key, 0.0) + per
        passes = sum(
            metrics_after.get(k, 0.0) - metrics_before.get(k, 0.0)
            for k in metrics_after
            if k.startswith("datajax_operator_reconciles_total")
        )
        return {
            "variant": variant,
            "models": n,
            "window_seconds": round(elapsed, 1),
            "requests_per_model_per_minute": requests,
            "api_requests_per_model_per_minute": round(sum(requests.values()), 3),
            "writes_per_model_per_minute": {k: round(v, 3) for k, v in sorted(writes.items())},
            "etcd_writes_per_model_per_minute": round(len(tracker.writes) * per, 3),
            "status_writes_per_model_per_minute": round(
                sum(1 for w in tracker.writes if w[2] == "status") * per, 3
            ),
            "passes_per_model_per_minute": round(passes * per, 2),
            "scrapes_per_model_per_minute": round((farm.scrapes - scrapes_before) * per, 2),
            "operator_cpu_percent": round(100 * cpu / elapsed, 1),
            "operator_rss_mb": round(rss_bytes(pid) / 2**20, 1),
        }
    finally:
        operator.process.stop()
        await tracker.stop()


async def measure(
    api: Api, kubeconfig: Path, workdir: Path, settings: TrafficSettings
) -> list[dict[str, Any]]:
    """Every size, the baseline first (when given), then this checkout."""
    farm = SidecarFarm()
    await farm.start()
    results = []
    try:
        for n in settings.sizes:
            for variant in ("baseline", "current") if settings.baseline else ("current",):
                try:
                    result = await scenario(
                        api, farm, variant, n, kubeconfig=kubeconfig, workdir=workdir, settings=settings
                    )
                except TimeoutError as err:  # an operator that cannot keep up is a result too
                    print(f"  traffic {variant:>8} N={n:<5} {err}", flush=True)
                    results.append({"variant": variant, "models": n, "error": str(err)})
                    continue
                print(
                    f"  traffic {variant:>8} N={n:<5} {result['api_requests_per_model_per_minute']:6.2f} req"
                    f"  {result['etcd_writes_per_model_per_minute']:6.3f} writes /model/min"
                    f"  cpu {result['operator_cpu_percent']:5.1f}%",
                    flush=True,
                )
                results.append(result)
    finally:
        await farm.stop()
    return results
