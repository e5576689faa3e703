"""kopf handlers, kept thin: every trigger ends in the same reconcile() of one model.

Triggers: the model's create/update/resume; an event on a workload the model controls (its controller
wrote new availability); a periodic resync that re-observes every known model. A per-model lock
serialises them, so two triggers never reconcile the same model at once. No handler needs a finalizer:
every child carries a controller owner reference, so Kubernetes' garbage collector removes them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from datajax_operator.api.constants import GROUP, KIND, PLURAL, VERSION
from datajax_operator.kube import DEPLOYMENT, LEADER_WORKER_SET, Kube
from datajax_operator.metrics import ModelKey, OperatorMetrics
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.reconcile import Outcome, reconcile
from datajax_operator.render.names import MANAGED_BY_LABEL, MANAGER

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 30.0
"""How soon a model waiting for a missing API (the LeaderWorkerSet CRD) is tried again."""


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
    clock: Callable[[], datetime] = utc_now
    locks: dict[ModelKey, asyncio.Lock] = field(default_factory=dict)
    executor: Executor | None = None
    """Threads the blocking reconciles run in (None: the event loop's default, ~cores + 4)."""
    workload_versions: dict[ModelKey, str] = field(default_factory=dict)
    """Per model, the workload's resourceVersion as the last reconcile read it back."""

    async def reconcile(self, namespace: str, name: str) -> Outcome | None:
        """One reconcile pass in a worker thread (the client is blocking), under the model's lock."""
        key = (namespace, name)
        async with self.locks.setdefault(key, asyncio.Lock()):
            started = time.monotonic()
            try:
                outcome = await asyncio.get_running_loop().run_in_executor(
                    self.executor, reconcile, self.kube, namespace, name, self.config, self.clock()
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
            self.metrics.record(key, outcome.status)
            result = (
                "waiting" if outcome.waiting_for else "changed" if outcome.status_written else "unchanged"
            )
        self.metrics.reconciles.labels(result=result).inc()
        return outcome

    async def workload_changed(self, namespace: str, name: str, version: str | None) -> None:
        """A watch event on a model's workload: reconcile, unless the last reconcile already read the
        workload at this ``version`` (None: always reconcile). Most such events are the echo of the
        operator's own apply (the ADDED after a create): re-running the whole pass for them doubled
        the API requests of a burst of new models (make bench), and found nothing new."""
        key = (namespace, name)
        async with self.locks.setdefault(key, asyncio.Lock()):
            if version is not None and self.workload_versions.get(key) == version:
                return
        await self.reconcile(namespace, name)

    def forget(self, key: ModelKey) -> None:
        self.workload_versions.pop(key, None)
        self.locks.pop(key, None)
        self.metrics.forget(key)

    async def resync(self) -> None:
        """Re-observe every known model forever: catches what no watch event reports."""
        while True:
            await asyncio.sleep(self.resync_seconds)
            for namespace, name in list(self.locks):
                try:
                    await self.reconcile(namespace, name)
                except Exception:
                    log.exception("resync of %s/%s failed", namespace, name)


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
    async def model_event(type: str, namespace: str | None, name: str, **_: Any) -> None:
        if type == "DELETED" and namespace is not None:
            ctx.forget((namespace, name))

    for workload in (DEPLOYMENT, LEADER_WORKER_SET):
        group, _, version = workload.api_version.rpartition("/")

        @kopf.on.event(group, version, workload.plural, labels={MANAGED_BY_LABEL: MANAGER}, registry=registry)
        async def workload_event(type: str, body: kopf.Body, namespace: str | None, **_: Any) -> None:
            model = _controller_model(body)
            if model is not None and namespace is not None:
                # a deletion carries the last version read, yet the workload must be recreated
                version = None if type == "DELETED" else body.get("metadata", {}).get("resourceVersion")
                await ctx.workload_changed(namespace, model, version)

    @kopf.on.startup(registry=registry)
    async def start_resync(memo: kopf.Memo, **_: Any) -> None:
        memo["resync"] = asyncio.create_task(ctx.resync())

    @kopf.on.cleanup(registry=registry)
    async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
        task: asyncio.Task[None] | None = memo.get("resync")
        if task is not None:
            task.cancel()
