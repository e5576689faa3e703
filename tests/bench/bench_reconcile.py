"""Reconcile throughput, latency and steady state of the operator against a real API server.

For each size N, in one run and in this order, N models are created in a burst (the same documents,
round-robin over ``examples/``, 32 creates in flight) into a fresh namespace, and the time until every
model is settled is measured from watches on the server:

* ``raw``: no operator. The burst client itself server-side-applies, per model, the very children and
  status the operator would write (rendered before the clock starts). The API server's limit here.
* ``kopf-minimal``: ``minimal_kopf.py``, a kopf operator that only writes ``status.observedGeneration``.
  The framework's limit.
* ``datajax``: ``datajax-operator run`` as a subprocess.

Settled = the workload and the Service exist (raw, datajax) and ``status.observedGeneration`` equals
the generation. Latency = from just before a model's create request to both children being seen by
the watch. After the datajax burst the operator keeps running for the steady-state window: writes
seen by the watches (anything that changes a resourceVersion, Events included), write requests
counted by the API server (a no-op server-side apply is a request but not a write), operator CPU and
RSS from /proc. At the smallest N, models are also created one at a time into the settled cluster
(idle latency). At the largest N py-spy samples the operator during the burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from apiclient import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    EVENTS,
    LEADER_WORKER_SETS,
    MODELS,
    READ_VERBS,
    SERVICES,
    WRITE_VERBS,
    Api,
    ApiError,
    Endpoint,
    Resource,
    bounded,
)
from procs import Process, Profiler, child_pids, cpu_seconds, py_spy, rss_bytes, wait_healthy
from profile_summary import summarise

from datajax_devtools.localcluster import free_port
from datajax_operator.decide import conclude, decide
from datajax_operator.observe import gather
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.reconcile import stamped

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
MINIMAL_KOPF = Path(__file__).with_name("minimal_kopf.py")
OPERATOR = Path(sys.executable).with_name("datajax-operator")
CREATES_IN_FLIGHT = 32
WATCHED_CHILDREN = (DEPLOYMENTS, LEADER_WORKER_SETS, SERVICES)
WRITE_RESOURCES = frozenset({"datajaxmodels", "deployments", "leaderworkersets", "services", "events"})
_DURATION_COUNT = "datajax_operator_reconcile_duration_seconds_count"
_DURATION_SUM = "datajax_operator_reconcile_duration_seconds_sum"
FAKE_UID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Settings:
    """What one run measures; ``smoke()`` is the tiny variant ``make test`` runs."""

    sizes: tuple[int, ...] = (100, 500, 1000)
    steady_seconds: float = 60.0
    """Window of the steady-state count at the largest N (a half window at the others)."""
    resync_seconds: float = 30.0
    """The operator's periodic pass (``--observe-interval``): the window sees every model re-reconciled."""
    idle_samples: int = 30
    settle_seconds: float = 5.0
    """The steady-state window starts once nothing has changed for this long."""
    profile: bool = True
    workers: int | None = None
    """``datajax-operator run --workers`` (None: the operator's default)."""
    timeout_seconds: float = 120.0
    """How long a burst may take, plus half a second per model."""

    @classmethod
    def smoke(cls) -> Settings:
        return cls(sizes=(3,), steady_seconds=3.0, resync_seconds=1.0, idle_samples=2, settle_seconds=2.0)


def model_document(index: int, namespace: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLES[index % len(EXAMPLES)].read_text())
    doc["metadata"] = {"name": f"m{index:05d}", "namespace": namespace}
    return doc


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99 (nearest rank) in milliseconds, and the sample count."""
    ordered = sorted(values)

    def rank(q: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 1)

    return {"p50_ms": rank(0.5), "p95_ms": rank(0.95), "p99_ms": rank(0.99), "samples": len(ordered)}


@dataclass
class Tracker:
    """Follows one namespace through watches: when each model got its children and its status."""

    api: Api
    namespace: str
    needs_children: bool
    created: dict[str, float] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)
    children_at: dict[str, float] = field(default_factory=dict)
    observed_at: dict[str, float] = field(default_factory=dict)
    writes: list[tuple[str, str, str]] = field(default_factory=list)
    """(resource, event type, what changed) of every change seen since :meth:`count_writes` began."""
    counting: bool = False
    last_event: float = 0.0
    _models: dict[str, dict[str, Any]] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        resources = [MODELS, EVENTS, *(WATCHED_CHILDREN if self.needs_children else ())]
        for resource in resources:
            since = await self.api.list_version(resource, self.namespace)
            self._tasks.append(asyncio.create_task(self._follow(resource, since)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow(self, resource: Resource, since: str) -> None:
        """One watch, resumed where it ended; a 429 is the watch cache of a new CRD still starting."""
        while True:
            try:
                async for arrived, kind, obj in self.api.watch(
                    resource, self.namespace, since, metadata_only=resource is not MODELS
                ):
                    since = obj["metadata"]["resourceVersion"]
                    self._event(resource, arrived, kind, obj)
            except ApiError as err:
                if err.status != 429:
                    raise
                await asyncio.sleep(0.5)

    def _event(self, resource: Resource, arrived: float, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if resource is MODELS:
            self._model_event(arrived, kind, name, obj)
        elif resource is EVENTS:
            self._count(resource, kind, "event")
        else:
            self._count(resource, kind, "child")
            if kind == "ADDED":
                seen = self.children.setdefault(name, set())
                seen.add("service" if resource is SERVICES else "workload")
                if len(seen) == 2 and name not in self.children_at:
                    self.children_at[name] = arrived
        self.last_event = arrived
        self._changed.set()

    async def quiet(self, seconds: float, timeout: float) -> None:
        """Until no watched object has changed for ``seconds`` (the operator has finished the
        burst's trailing work: kopf's annotations, Events, reconciles its own writes triggered)."""
        deadline = time.monotonic() + timeout
        while (idle := time.monotonic() - self.last_event) < seconds and time.monotonic() < deadline:
            await asyncio.sleep(seconds - idle)

    def _model_event(self, arrived: float, kind: str, name: str, obj: dict[str, Any]) -> None:
        previous = self._models.get(name)
        self._models[name] = obj
        if previous is not None and kind == "MODIFIED":
            status_only = {k: v for k, v in obj.items() if k not in ("status", "metadata")} == {
                k: v for k, v in previous.items() if k not in ("status", "metadata")
            } and _meta(obj) == _meta(previous)
            self._count(MODELS, kind, "status" if status_only else "spec/metadata")
        generation = obj["metadata"].get("generation")
        if (obj.get("status") or {}).get("observedGeneration") == generation and name not in self.observed_at:
            self.observed_at[name] = arrived

    def _count(self, resource: Resource, kind: str, what: str) -> None:
        if self.counting:
            self.writes.append((resource.plural, kind, what))

    def settled(self, name: str) -> float | None:
        """When the model was settled (children and status), None if not yet."""
        done = self.observed_at.get(name)
        if done is None:
            return None
        if self.needs_children:
            children = self.children_at.get(name)
            return None if children is None else max(done, children)
        return done

    async def wait(self, names: list[str], timeout: float, check: Callable[[], None] | None = None) -> float:
        """Until every named model is settled; returns when the last one was. ``check`` raises
        when waiting is pointless (the operator died)."""
        deadline = time.monotonic() + timeout
        while True:
            if check is not None:
                check()
            for task in self._tasks:
                if task.done():
                    task.result()  # a watch that failed: raise its error
                    raise RuntimeError("a watch ended")
            times = [self.settled(n) for n in names]
            if all(t is not None for t in times):
                return max(t for t in times if t is not None)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = sum(1 for t in times if t is None)
                raise TimeoutError(f"{missing} of {len(names)} models not settled in {timeout:.0f} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    def latencies(self, names: list[str]) -> list[float]:
        return [self.children_at[n] - self.created[n] for n in names if n in self.children_at]


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {k: meta.get(k) for k in ("labels", "annotations", "finalizers", "ownerReferences")}


@dataclass
class CpuMeter:
    """CPU seconds of the API server, etcd, this process and (when given) the operator between two
    points: on 2 shared cores, who used the CPU explains the throughput."""

    operator_pid: int | None = None
    _start: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        found = {name: cpu_seconds(pid) for name, pid in child_pids(("kube-apiserver", "etcd")).items()}
        found["bench client"] = time.process_time()
        if self.operator_pid is not None:
            found["operator"] = cpu_seconds(self.operator_pid)
        return found

    def begin(self) -> None:
        self._start = self._now()

    def end(self) -> dict[str, float]:
        now = self._now()
        return {k: round(now[k] - self._start.get(k, 0.0), 2) for k in now}


def desired(index: int, namespace: str, config: OperatorConfig) -> tuple[dict[str, Any], list[Any], Any]:
    """A model, the children and the status document the operator would write for it (by the
    operator's own planning, rendering and evaluation), with a placeholder owner uid."""
    doc = model_document(index, namespace)
    raw = {**copy.deepcopy(doc), "metadata": {**doc["metadata"], "uid": FAKE_UID, "generation": 1}}
    now = datetime.now(UTC).replace(microsecond=0)
    decision = decide(raw, config, (), now, wave_spec=None)
    children = [stamped(c) for c in decision.desired]
    workload = next(c for c in children if c["kind"] in ("Deployment", "LeaderWorkerSet"))
    status = conclude(raw, decision, gather(workload, None), now).status
    return doc, children, status.model_dump(mode="json", by_alias=True, exclude_none=True)


async def _burst_raw(api: Api, tracker: Tracker, namespace: str, plans: list[Any]) -> None:
    def job(i: int) -> Any:
        doc, children, status = plans[i]

        async def run() -> None:
            name = doc["metadata"]["name"]
            tracker.created[name] = time.monotonic()
            created = await api.create(MODELS, namespace, doc)
            uid = created["metadata"]["uid"]
            for child in children:
                child["metadata"]["ownerReferences"][0]["uid"] = uid
                resource = {
                    "Deployment": DEPLOYMENTS,
                    "LeaderWorkerSet": LEADER_WORKER_SETS,
                    "ConfigMap": CONFIG_MAPS,
                }.get(child["kind"], SERVICES)
                await api.apply(resource, namespace, child["metadata"]["name"], child)
            body = {
                "apiVersion": doc["apiVersion"],
                "kind": doc["kind"],
                "metadata": {"name": name},
                "status": status,
            }
            await api.apply(MODELS, namespace, name, body, subresource="status")

        return run

    await bounded(CREATES_IN_FLIGHT, [job(i) for i in range(len(plans))])


async def _burst_create(api: Api, tracker: Tracker, namespace: str, n: int, start: int = 0) -> None:
    def job(i: int) -> Any:
        doc = model_document(i, namespace)

        async def run() -> None:
            tracker.created[doc["metadata"]["name"]] = time.monotonic()
            await api.create(MODELS, namespace, doc)

        return run

    await bounded(CREATES_IN_FLIGHT, [job(i) for i in range(start, start + n)])


@dataclass
class Operator:
    """A running operator process and its ports."""

    process: Process
    liveness_port: int
    metrics_port: int | None

    async def metrics(self) -> dict[str, float]:
        """The operator's own reconcile counters, from its /metrics."""
        if self.metrics_port is None:
            return {}
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response,
        ):
            text = await response.text()
        wanted = ("datajax_operator_reconciles_total", "datajax_operator_reconcile_duration_seconds_")
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(wanted) and "_bucket" not in line:
                key, _, value = line.rpartition(" ")
                found[key] = float(value)
        return found


def run_command(
    program: list[str],
    namespace: str,
    kubeconfig: Path,
    *,
    liveness: int,
    metrics: int,
    observe_interval: str,
) -> list[str]:
    """``<program> run ...``: the command line both bench scenarios start the operator with."""
    return [
        *program,
        "run",
        "--namespace",
        namespace,
        "--kubeconfig",
        str(kubeconfig),
        "--liveness-port",
        str(liveness),
        "--metrics-port",
        str(metrics),
        "--log-format",
        "json",
        "--observe-interval",
        observe_interval,
    ]


async def start_operator(
    variant: str, namespace: str, kubeconfig: Path, workdir: Path, settings: Settings
) -> Operator:
    liveness = free_port()
    log = workdir / f"{variant}-{namespace}.log"
    if variant == "kopf-minimal":
        process = Process(
            [
                str(Path(sys.executable)),
                str(MINIMAL_KOPF),
                "--namespace",
                namespace,
                "--liveness-port",
                str(liveness),
            ],
            log,
            env={"KUBECONFIG": str(kubeconfig)},
        )
        operator = Operator(process, liveness, None)
    else:
        metrics = free_port()
        process = Process(
            [
                *run_command(
                    [str(OPERATOR)],
                    namespace,
                    kubeconfig,
                    liveness=liveness,
                    metrics=metrics,
                    observe_interval=f"{max(1, round(settings.resync_seconds))}s",
                ),
                *(["--workers", str(settings.workers)] if settings.workers else []),
            ],
            log,
        )
        operator = Operator(process, liveness, metrics)
    await wait_healthy(process, liveness)
    return operator


async def burst(
    api: Api, variant: str, n: int, *, kubeconfig: Path, workdir: Path, settings: Settings, profile: bool
) -> tuple[dict[str, Any], Operator | None, Tracker]:
    """One burst of N models into a fresh namespace; the datajax operator is left running."""
    namespace = f"{variant.replace('-', '')}-{n}-{uuid.uuid4().hex[:5]}"
    await api.create_namespace(namespace)
    operator = None
    if variant != "raw":
        operator = await start_operator(variant, namespace, kubeconfig, workdir, settings)
    tracker = Tracker(api, namespace, needs_children=variant != "kopf-minimal")
    await tracker.start()
    profiler = None
    if profile and operator is not None:
        profiler = Profiler(operator.process.pid, workdir / f"profile-{namespace}.txt")
        await asyncio.sleep(0.5)  # py-spy attaches
    config = OperatorConfig()
    plans = [desired(i, namespace, config) for i in range(n)] if variant == "raw" else []
    meter = CpuMeter(operator.process.pid if operator else None)
    requests_before = await api.requests_served(WRITE_RESOURCES, WRITE_VERBS | READ_VERBS)
    metrics_before = await operator.metrics() if operator else {}
    meter.begin()
    started = time.monotonic()
    if variant == "raw":
        await _burst_raw(api, tracker, namespace, plans)
    else:
        await _burst_create(api, tracker, namespace, n)
    names = [f"m{i:05d}" for i in range(n)]
    last = await tracker.wait(
        names, settings.timeout_seconds + n / 2, operator.process.check_alive if operator else None
    )
    cpu = meter.end()
    await tracker.quiet(settings.settle_seconds, timeout=120)  # trailing reconciles, Events, annotations
    requests_after = await api.requests_served(WRITE_RESOURCES, WRITE_VERBS | READ_VERBS)
    metrics_after = await operator.metrics() if operator else {}
    requests = {
        k: round((v - requests_before.get(k, 0.0)) / n, 2)
        for k, v in sorted(requests_after.items())
        if v != requests_before.get(k, 0.0)
    }
    seconds = last - started
    result: dict[str, Any] = {
        "variant": variant,
        "models": n,
        "seconds": round(seconds, 2),
        "models_per_second": round(n / seconds, 1),
        "cpu_seconds": cpu,
        "requests_per_model": requests,
    }
    passes = metrics_after.get(_DURATION_COUNT, 0.0) - metrics_before.get(_DURATION_COUNT, 0.0)
    if passes:
        result["reconciles_per_model"] = round(passes / n, 2)
        spent = metrics_after[_DURATION_SUM] - metrics_before.get(_DURATION_SUM, 0.0)
        result["reconcile_mean_ms"] = round(1000 * spent / passes, 1)
    if tracker.needs_children:
        result["apply_to_children"] = percentiles(tracker.latencies(names))
    if profiler is not None:
        result["profile"] = summarise(profiler.stop())
    if operator is not None and variant != "datajax":
        operator.process.stop()
        operator = None
    return result, operator, tracker


async def steady_state(
    api: Api, operator: Operator, tracker: Tracker, n: int, *, window: float, settle: float
) -> dict[str, Any]:
    """Writes, write requests, CPU and RSS of a settled operator over ``window`` seconds."""
    await tracker.quiet(settle, timeout=120)
    before_requests = await api.requests_served(WRITE_RESOURCES, WRITE_VERBS)
    before_metrics = await operator.metrics()
    pid = operator.process.pid
    cpu_before, started = cpu_seconds(pid), time.monotonic()
    tracker.writes.clear()
    tracker.counting = True
    await asyncio.sleep(window)
    tracker.counting = False
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_before
    after_requests = await api.requests_served(WRITE_RESOURCES, WRITE_VERBS)
    after_metrics = await operator.metrics()
    per_minute = 60.0 / elapsed
    by_kind: dict[str, int] = {}
    for resource, kind, what in tracker.writes:
        key = f"{resource} {kind} ({what})"
        by_kind[key] = by_kind.get(key, 0) + 1
    reconciles = sum(
        after_metrics.get(k, 0.0) - before_metrics.get(k, 0.0)
        for k in after_metrics
        if k.startswith("datajax_operator_reconciles_total")
    )
    return {
        "models": n,
        "window_seconds": round(elapsed, 1),
        "writes_per_minute": round(len(tracker.writes) * per_minute, 1),
        "writes_by_kind": by_kind,
        "status_figure_writes_per_minute": round(
            sum(1 for w in tracker.writes if w[2] == "status") * per_minute, 1
        ),
        "write_requests_per_minute": {
            verb: round((after_requests.get(verb, 0.0) - before_requests.get(verb, 0.0)) * per_minute, 1)
            for verb in sorted(after_requests)
            if after_requests.get(verb, 0.0) != before_requests.get(verb, 0.0)
        },
        "reconciles_per_minute": round(reconciles * per_minute, 1),
        "operator_cpu_percent": round(100 * cpu / elapsed, 1),
        "operator_rss_mb": round(rss_bytes(pid) / 2**20, 1),
    }


async def idle_latency(
    api: Api, operator: Operator, tracker: Tracker, samples: int, timeout: float
) -> dict[str, Any]:
    """Models created one at a time into a settled namespace: apply -> children, nothing else going on."""
    names = []
    for i in range(samples):
        index = 90000 + i
        await _burst_create(api, tracker, tracker.namespace, 1, start=index)
        name = f"m{index:05d}"
        names.append(name)
        await tracker.wait([name], timeout, operator.process.check_alive)
        await asyncio.sleep(0.2)
    return percentiles(tracker.latencies(names))


async def measure(endpoint: Endpoint, kubeconfig: Path, workdir: Path, settings: Settings) -> dict[str, Any]:
    """Every reconcile figure of one run (see the module docstring)."""
    throughput: list[dict[str, Any]] = []
    steady: list[dict[str, Any]] = []
    idle: dict[str, Any] = {}
    largest = max(settings.sizes)
    async with Api(endpoint) as api:
        # The API server builds its server-side-apply type models lazily, on the first apply of each
        # kind (seconds on this machine): paid here, outside every measured burst.
        _, _, warmup = await burst(
            api,
            "raw",
            len(EXAMPLES),
            kubeconfig=kubeconfig,
            workdir=workdir,
            settings=settings,
            profile=False,
        )
        await warmup.stop()
        for n in settings.sizes:
            for variant in ("raw", "kopf-minimal", "datajax"):
                profile = settings.profile and variant == "datajax" and n == largest and py_spy() is not None
                result, operator, tracker = await burst(
                    api,
                    variant,
                    n,
                    kubeconfig=kubeconfig,
                    workdir=workdir,
                    settings=settings,
                    profile=profile,
                )
                throughput.append(result)
                print(
                    f"  {variant:>12} N={n:<5} {result['seconds']:7.2f} s  {result['models_per_second']:7.1f}"
                    " models/s",
                    flush=True,
                )
                if operator is not None:
                    try:
                        window = settings.steady_seconds if n == largest else settings.steady_seconds / 2
                        steady.append(
                            await steady_state(
                                api, operator, tracker, n, window=window, settle=settings.settle_seconds
                            )
                        )
                        if n == min(settings.sizes):
                            idle = await idle_latency(
                                api, operator, tracker, settings.idle_samples, settings.timeout_seconds
                            )
                    finally:
                        operator.process.stop()
                await tracker.stop()
    return {
        "throughput": throughput,
        "steady_state": steady,
        "idle_latency": idle,
        "ratios": ratios(throughput),
    }


def ratios(throughput: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """datajax's rate over raw's and over kopf-minimal's, per size."""
    by = {(r["variant"], r["models"]): r["models_per_second"] for r in throughput}
    out = []
    for n in sorted({r["models"] for r in throughput}):
        ours = by.get(("datajax", n))
        if ours is None:
            continue
        out.append(
            {
                "models": n,
                "vs_raw": round(ours / by[("raw", n)], 2) if ("raw", n) in by else None,
                "vs_kopf_minimal": round(ours / by[("kopf-minimal", n)], 2)
                if ("kopf-minimal", n) in by
                else None,
            }
        )
    return out
