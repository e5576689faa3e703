"""A model the watch cache still holds while its namespace is deleted: the pass ends as "gone", not as
an error. The API server refuses new objects in a Terminating namespace (403, cause
NamespaceTerminating) and in a namespace that no longer exists (404 about the namespace), both from
its NamespaceLifecycle admission plugin (k8s.io/apiserver pkg/admission/plugin/namespace/lifecycle).
Driven through the handlers' Context against the real API server."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import EXAMPLES, GROUP, PLURAL, VERSION, load_example, wait_for
from kubernetes import client

from datajax_operator.handlers import Context
from datajax_operator.kube import Kube
from datajax_operator.metrics import OperatorMetrics
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.reconcile import Outcome

pytestmark = pytest.mark.integration

HOLD = "datajax.dev/test-hold"
"""A finalizer nothing removes but this test: it keeps the namespace Terminating while it runs."""


def _count(ctx: Context, result: str) -> float:
    return float(ctx.metrics.reconciles.labels(result=result)._value.get())


def _gone_not_error(kubeconfig: Path, model: dict[str, Any]) -> None:
    """One pass over ``model`` as the cache holds it counts as "gone" and raises nothing."""
    kube = Kube.connect(str(kubeconfig))
    ctx = Context(kube=kube, config=OperatorConfig(), metrics=OperatorMetrics(), resync_seconds=3600)
    ctx.objects().put(model)

    async def one_pass() -> Outcome | None:
        try:
            return await ctx.reconcile(model["metadata"]["namespace"], model["metadata"]["name"])
        finally:
            if ctx.session is not None:
                await ctx.session.close()

    try:
        outcome = asyncio.run(one_pass())
    finally:
        kube.close()
    assert outcome is None
    assert (_count(ctx, "gone"), _count(ctx, "error")) == (1, 0)


@pytest.fixture
def terminating(admin_client: Any) -> Iterator[str]:
    """A namespace held in Terminating by a finalized ConfigMap, released at the end."""
    core = client.CoreV1Api(admin_client)
    name = f"t-going-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="hold", finalizers=[HOLD]))
    )
    try:
        yield name
    finally:
        core.patch_namespaced_config_map("hold", name, {"metadata": {"finalizers": None}})
        core.delete_namespace(name)


def test_a_terminating_namespace_ends_the_pass_as_gone(
    kubeconfig: Path, admin_client: Any, terminating: str
) -> None:
    doc = load_example(next(p for p in EXAMPLES if "8b" in p.name), terminating)
    model = client.CustomObjectsApi(admin_client).create_namespaced_custom_object(
        GROUP, VERSION, terminating, PLURAL, doc
    )
    core = client.CoreV1Api(admin_client)
    core.delete_namespace(terminating)
    wait_for(
        lambda: core.read_namespace(terminating).status.phase == "Terminating", 30, "a Terminating namespace"
    )
    _gone_not_error(kubeconfig, model)


def test_a_namespace_that_no_longer_exists_ends_the_pass_as_gone(kubeconfig: Path) -> None:
    model = copy.deepcopy(load_example(next(p for p in EXAMPLES if "8b" in p.name), "t-never-created"))
    model["metadata"].update(uid=str(uuid.uuid4()), resourceVersion="1", generation=1)
    _gone_not_error(kubeconfig, model)
