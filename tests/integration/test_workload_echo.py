"""A workload event the last reconcile already observed (the echo of the operator's own apply) is
skipped; a newer version or a deletion is reconciled. Driven through the handlers' Context against the
real API server, so the count of reconcile passes is exact (no kopf timing involved)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import EXAMPLES, GROUP, PLURAL, VERSION, load_example
from kubernetes import client

from datajax_operator.handlers import Context
from datajax_operator.kube import Kube
from datajax_operator.metrics import OperatorMetrics
from datajax_operator.plan.config import OperatorConfig

pytestmark = pytest.mark.integration


def _passes(ctx: Context) -> float:
    return sum(
        ctx.metrics.reconciles.labels(result=r)._value.get()
        for r in ("changed", "unchanged", "waiting", "gone")
    )


def test_echo_of_own_apply_is_skipped_deletion_is_not(
    kubeconfig: Path, admin_client: Any, namespace: str
) -> None:
    example = next(p for p in EXAMPLES if "8b" in p.name)  # a Deployment
    doc = load_example(example, namespace)
    name = doc["metadata"]["name"]
    client.CustomObjectsApi(admin_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, doc
    )
    apps = client.AppsV1Api(admin_client)
    kube = Kube.connect(str(kubeconfig))
    ctx = Context(kube=kube, config=OperatorConfig(), metrics=OperatorMetrics(), resync_seconds=3600)

    async def scenario() -> None:
        outcome = await ctx.reconcile(namespace, name)
        assert outcome is not None and outcome.workload_version is not None
        # the version the pass saw (its apply's answer, or the Deployment as another pass left it): the
        # deployment controller may have written its status since, a newer version, not an echo
        read = apps.read_namespaced_deployment(name, namespace)
        assert int(read.metadata.resource_version) >= int(outcome.workload_version)

        before = _passes(ctx)
        await ctx.child_changed(namespace, name, outcome.workload_version)  # the echo
        assert _passes(ctx) == before

        await ctx.child_changed(namespace, name, "a-newer-version")  # e.g. the controller's status
        assert _passes(ctx) == before + 1

        apps.delete_namespaced_deployment(name, namespace)
        version = ctx.workload_versions[(namespace, name)]
        await ctx.child_changed(namespace, name, None)  # a DELETED event: always reconciled
        assert _passes(ctx) == before + 2
        assert apps.read_namespaced_deployment(name, namespace).metadata.resource_version != version

    try:
        asyncio.run(scenario())
    finally:
        kube.close()
