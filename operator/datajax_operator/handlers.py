"""kopf handlers, kept thin: every trigger ends in the same reconcile() of one model.

Triggers: the model's create/update/resume; an event on a child the model controls (the workload's
controller wrote new availability, or someone else changed a field we own: the pass applies it
back); and one periodic pass per model (``observe interval``, default 30 s) that scrapes the sidecars
and re-drives the model, which also catches whatever no watch event reported (there is no separate
resync). The periodic pass pauses with the operator when kopf peering pauses it. A per-model lock
serialises the triggers, so two passes never reconcile the same model at once.

Every watch event's object is stored in the ``ObjectCache`` the passes read (the models and the
children of the watched kinds), so a steady pass sends no GET: its requests are the EndpointSlices
list and, only when something changed, an apply or the status write.

Every pass scrapes the model's sidecars first (EndpointSlices through ``kube``, HTTP through
``observe``, concurrently and with a timeout, in the event loop), then reconciles in a worker thread.
The periodic pass is a task per model rather than ``kopf.timer``: kopf puts a finalizer on every
object that has a timer, and a finalizer means a model cannot be deleted (nor its namespace) while
the operator is down or uninstalled. No handler needs one: every child carries a controller owner
reference, so Kubernetes' garbage collector removes them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf

from datajax_operator.api.constants import GROUP, KIND, PLURAL, VERSION
from datajax_operator.cache import ObjectCache
from datajax_operator.kube import DATAJAX_MODEL, DEPLOYMENT, JOB, LEADER_WORKER_SET, SERVICE, Kube, KubeError
from datajax_operator.metrics import ModelKey, OperatorMetrics
from datajax_operator.observe import scrape_sidecars, sidecar_endpoints
from datajax_operator.peering import Peering, paused_by_peers
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.reconcile import Outcome, reconcile
from datajax_operator.render.names import MANAGED_BY_LABEL, MANAGER, base_name, child_names
from datajax_operator.status.observations import Scrapes
from datajax_operator.status.recent import Recent

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 30.0
"""How soon a model waiting for a missing API (the LeaderWorkerSet CRD) is tried again."""

WATCHED_KINDS = (DATAJAX_MODEL, DEPLOYMENT, LEADER_WORKER_SET, SERVICE, JOB)
"""Kinds whose objects the cache learns from kopf's watches (the children by the managed-by label).
Jobs are the compile gate's (spec.plan.compileGate): the Job controller's count of an ended pod is
what makes the pass read the verdict."""

PAUSE_CHECK_SECONDS = 1.0
"""How long one answer to "does peering pause this replica?" serves every model's periodic pass."""


def utc_now() -> datetime:
    """The reconcile clock: UTC to the second, the precision of metav1.Time."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Context:
    """What every handler of one operator instance shares."""

    kube: Kube
    config: OperatorConfig
    metrics: OperatorMetrics
    resync_seconds: float
    """How long a child of a kind nobody watches (the settings ConfigMap) is trusted as last seen
    before it is read again (a person's edit of it is reverted at most this late)."""
    clock: Callable[[], datetime] = utc_now
    dial: Mapping[str, str] = field(default_factory=dict)
    """Sidecar address -> address to connect to; empty in a cluster (see ``observe.scrape_sidecars``)."""
    peering: Peering | None = None
    """None: standalone, never paused."""
    locks: dict[ModelKey, asyncio.Lock] = field(default_factory=dict)
    observers: dict[ModelKey, asyncio.Task[None]] = field(default_factory=dict)
    session: aiohttp.ClientSession | None = None

    async def _scrape(self, namespace: str, name: str) -> Scrapes:
        """This pass's scrapes of the model's sidecars. EndpointSlices the API server refuses to list
        (a 403 from RBAC without ``endpointslices``, a 5xx) leave the pass without metrics, never
        without its reconcile: the workload does not depend on its figures."""
        service = base_name(name)
        try:
            # in the reconcile pool, whose size the client's connection pool matches (the default
            # executor's threads on top of it made the client drop and re-handshake connections)
            slices = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.kube.endpoint_slices, namespace, service
            )
        except KubeError as err:
            log.warning("%s/%s: EndpointSlices not readable, no metrics this pass: %s", namespace, name, err)
            return Scrapes(unlisted=str(err))
        if self.session is None:
            self.session = aiohttp.ClientSession()
        return Scrapes(
            await scrape_sidecars(
                self.session, sidecar_endpoints(slices), self.config.scrape_timeout_seconds, self.dial
            )
        )

    executor: Executor | None = None
    """Threads the blocking reconciles run in (None: the event loop's default, ~cores + 4)."""
    workload_versions: dict[ModelKey, str] = field(default_factory=dict)
    """Per model, the workload's resourceVersion as the last reconcile read it back."""
    recent: dict[ModelKey, Recent] = field(default_factory=dict)
    """Per model, the judgement's memory of its recent passes (see ``status.recent``)."""
    cache: ObjectCache | None = None
    _pause: tuple[bool, float] | None = None

    def objects(self) -> ObjectCache:
        if self.cache is None:
            self.cache = ObjectCache(frozenset(k.kind for k in WATCHED_KINDS), ttl=self.resync_seconds)
        return self.cache

    async def reconcile(self, namespace: str, name: str) -> Outcome | None:
        """Scrape the model's sidecars, then one reconcile pass in a worker thread (the client is
        blocking), all under the model's lock."""
        key = (namespace, name)
        async with self.locks.setdefault(key, asyncio.Lock()):
            started = time.monotonic()
            try:
                scrapes = await self._scrape(namespace, name)
                outcome = await asyncio.get_running_loop().run_in_executor(
                    self.executor,
                    functools.partial(
                        reconcile,
                        self.kube,
                        namespace,
                        name,
                        self.config,
                        self.clock(),
                        sidecars=scrapes.sidecars,
                        sidecars_unlisted=scrapes.unlisted,
                        cache=self.objects(),
                        recent=self.recent.get(key),
                    ),
                )
            except Exception:
                self.metrics.errors.inc()
                self.metrics.reconciles.labels(result="error").inc()
                raise
            finally:
                self.metrics.duration.observe(time.monotonic() - started)
        if outcome is None:
            self.forget(key)
            result = "gone"
        else:
            if outcome.workload_version is not None:
                self.workload_versions[key] = outcome.workload_version
            self.recent[key] = outcome.recent
            self.metrics.record(key, outcome.status)
            result = (
                "waiting" if outcome.waiting_for else "changed" if outcome.status_written else "unchanged"
            )
        self.metrics.reconciles.labels(result=result).inc()
        return outcome

    async def child_changed(self, namespace: str, name: str, version: str | None) -> None:
        """A watch event on a model's child: reconcile, unless the last reconcile already read the
        workload at this ``version`` (None, or another child's version: always reconcile). Most
        workload events are the echo of the operator's own apply (the ADDED after a create):
        re-running the whole pass for them doubled the API requests of a burst of new models (make
        bench), and found nothing new."""
        key = (namespace, name)
        async with self.locks.setdefault(key, asyncio.Lock()):
            if version is not None and self.workload_versions.get(key) == version:
                return
        if version is None:  # a deletion (or an unknown version): the children are read afresh
            for kind, child in child_names(name).items():
                self.objects().forget(kind, namespace, child)
        await self.reconcile(namespace, name)

    def forget(self, key: ModelKey) -> None:
        self.workload_versions.pop(key, None)
        self.recent.pop(key, None)
        self.locks.pop(key, None)
        self.metrics.forget(key)
        task = self.observers.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def observe(self, key: ModelKey) -> None:
        """Start the model's observation timer unless it runs."""
        task = self.observers.get(key)
        if task is None or task.done():
            self.observers[key] = asyncio.create_task(self._observe(key), name=f"observe {key[0]}/{key[1]}")

    async def _observe(self, key: ModelKey) -> None:
        """Reconcile (and so scrape) the model every observe interval, on a fixed cadence, until it
        is gone. Each model has its own task: a slow model delays only itself."""
        interval = self.config.observe_interval_seconds
        next_tick = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick = max(next_tick + interval, time.monotonic())
            try:
                if await self.paused():  # a standby never scrapes or acts beside the active replica
                    continue
                if await self.reconcile(*key) is None:
                    return
            except Exception:
                log.exception("observation of %s/%s failed", *key)

    async def close(self) -> None:
        for task in self.observers.values():
            task.cancel()
        self.observers.clear()
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def paused(self) -> bool:
        """Whether kopf peering pauses this replica now (its watches are closed meanwhile). One answer
        serves every model for ``PAUSE_CHECK_SECONDS``: asked per model, it was a GET per model per
        interval."""
        if self.peering is None:
            return False
        if self._pause is not None and time.monotonic() - self._pause[1] < PAUSE_CHECK_SECONDS:
            return self._pause[0]
        paused = await self._paused_now()
        if self._pause is not None and self._pause[0] and not paused:
            # kopf closed the watches while paused: what the cache holds may be older than what the
            # other replica wrote meanwhile (a stale status would re-decide its ScaleDown), so this
            # replica starts from the server's copies
            self.cache = None
        self._pause = (paused, time.monotonic())
        return paused

    async def _paused_now(self) -> bool:
        peering = self.peering
        if peering is None:
            return False
        scopes: tuple[str | None, ...] = peering.namespaces or (None,)
        for namespace in scopes:
            found = await asyncio.to_thread(self.kube.peering, peering.name, namespace)
            if paused_by_peers(found, peering, datetime.now(UTC)):
                return True
        return False


def _remember(cache: ObjectCache, event: Mapping[str, Any]) -> None:
    """Store the object of a watch event (kopf's raw event: a plain dict, unlike its Body view)."""
    obj = event.get("object")
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict) and "kind" in obj:
        cache.put(obj)


def _controller_model(body: Any) -> str | None:
    """The name of the DataJaxModel that controls this child, if any."""
    for ref in body.get("metadata", {}).get("ownerReferences", []):
        if (
            ref.get("controller")
            and ref.get("kind") == KIND
            and ref.get("apiVersion") == f"{GROUP}/{VERSION}"
        ):
            name: str = ref["name"]
            return name
    return None


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    """Attach every handler of the operator to ``registry`` (one registry per operator instance)."""

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        """kopf talks to the same server with the same credentials as ``kube``."""
        creds = ctx.kube.credentials()
        return kopf.ConnectionInfo(
            server=creds.server,
            ca_path=creds.ca_path,
            token=creds.token,
            scheme="Bearer" if creds.token else None,
            certificate_path=creds.certificate_path,
            private_key_path=creds.private_key_path,
            insecure=creds.insecure,
        )

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    async def model_changed(namespace: str | None, name: str, **_: Any) -> None:
        assert namespace is not None, "DataJaxModel is namespaced"
        outcome = await ctx.reconcile(namespace, name)
        if outcome is not None and outcome.waiting_for:
            raise kopf.TemporaryError(f"waiting for {outcome.waiting_for}", delay=RETRY_DELAY_SECONDS)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def model_event(
        type: str, event: Mapping[str, Any], namespace: str | None, name: str, **_: Any
    ) -> None:
        if namespace is None:
            return
        if type == "DELETED":
            ctx.objects().absent(KIND, namespace, name)
            ctx.forget((namespace, name))
        else:
            # kopf awaits the event-watching handlers of a watch event before its change handlers
            # (kopf._core.reactor.processing, process_resource_causes), so the create/update pass
            # of this very event finds its object here
            _remember(ctx.objects(), event)
            ctx.observe((namespace, name))

    for child in (DEPLOYMENT, LEADER_WORKER_SET, SERVICE, JOB):
        group, _, version = child.api_version.rpartition("/")

        @kopf.on.event(group, version, child.plural, labels={MANAGED_BY_LABEL: MANAGER}, registry=registry)
        async def child_event(
            type: str, body: kopf.Body, event: Mapping[str, Any], namespace: str | None, **_: Any
        ) -> None:
            if type == "DELETED":
                ctx.objects().absent(
                    body.get("kind", ""), namespace or "", body.get("metadata", {}).get("name")
                )
            else:
                _remember(ctx.objects(), event)
            model = _controller_model(body)
            if model is not None and namespace is not None:
                # a deletion carries the last version read, yet the child must be recreated
                version = None if type == "DELETED" else body.get("metadata", {}).get("resourceVersion")
                await ctx.child_changed(namespace, model, version)

    @kopf.on.cleanup(registry=registry)
    async def stop_observing(**_: Any) -> None:
        await ctx.close()
