"""A settled model costs no writes: periodic resyncs and an operator restart leave every object as is."""

from __future__ import annotations

from typing import Any

import pytest
from kubehelpers import EXAMPLES, GROUP, PLURAL, VERSION, Operators, load_example, wait_for
from kubernetes import client
from tests.polling import wait_for_passes

pytestmark = pytest.mark.integration

LWS = ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets")


def _versions(api_client: Any, namespace: str) -> dict[tuple[str, str], str]:
    """resourceVersion of every model and every child in the namespace."""
    custom = client.CustomObjectsApi(api_client)
    found: dict[tuple[str, str], str] = {}
    for kind, items in (
        ("DataJaxModel", custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]),
        ("LeaderWorkerSet", custom.list_namespaced_custom_object(*LWS[:2], namespace, LWS[2])["items"]),
    ):
        for item in items:
            found[(kind, item["metadata"]["name"])] = item["metadata"]["resourceVersion"]
    for kind, listing in (
        ("Deployment", client.AppsV1Api(api_client).list_namespaced_deployment(namespace)),
        ("Service", client.CoreV1Api(api_client).list_namespaced_service(namespace)),
    ):
        for obj in listing.items:
            found[(kind, obj.metadata.name)] = obj.metadata.resource_version
    return found


def _writers(api_client: Any, namespace: str) -> list[tuple[str, str, str | None, str | None]]:
    """Who last wrote what on each model (manager, subresource, time): the diagnosis of a failure."""
    models = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL
    )
    return [
        (m["metadata"]["name"], f["manager"], f.get("subresource"), f.get("time"))
        for m in models["items"]
        for f in m["metadata"].get("managedFields", [])
    ]


def test_resync_and_restart_write_nothing(admin_client: Any, namespace: str, operators: Operators) -> None:
    operator = operators.ensure()
    custom = client.CustomObjectsApi(admin_client)
    for example in EXAMPLES:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, load_example(example, namespace)
        )
    names = [load_example(p, namespace)["metadata"]["name"] for p in EXAMPLES]

    def settled() -> bool:
        models = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
        # status written by our reconcile, and kopf's own record of the handled spec written after it
        return len(models) == len(names) and all(
            (m.get("status") or {}).get("observedGeneration") == m["metadata"]["generation"]
            and "datajax.dev/last-handled-configuration" in m["metadata"].get("annotations", {})
            for m in models
        )

    wait_for(settled, what="every example reconciled")
    # kopf may still clear its progress annotations just after: settled means quiet across a whole pass
    # of every model, too
    quiet: list[dict[tuple[str, str], str]] = [_versions(admin_client, namespace)]

    def quiet_across_a_pass() -> bool:
        for name in names:
            wait_for_passes(lambda n=name: operator.passes(namespace, n), 1, 60, f"of {name}")
        now = _versions(admin_client, namespace)
        same = now == quiet[-1]
        quiet.append(now)
        return same

    wait_for(quiet_across_a_pass, 120, "no writes across a pass of every model")
    before = quiet[-1]
    # every model has its workload and Service, nothing else
    assert sorted(k for k in before if k[0] != "DataJaxModel") == sorted(
        [("Deployment", n) for n in names if "multihost" not in n]
        + [("LeaderWorkerSet", n) for n in names if "multihost" in n]
        + [("Service", n) for n in names]
    )

    # two more passes of every model (resyncs of the running operator): reconciles happen, writes do not
    for name in names:
        wait_for_passes(lambda n=name: operator.passes(namespace, n), 2, 60, f"of {name}")
    assert _versions(admin_client, namespace) == before, _writers(admin_client, namespace)

    everywhere = len(custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])
    restarted = operators.restart()
    wait_for(
        lambda: restarted.metric("datajax_operator_reconciles_total", result="unchanged") >= everywhere,
        timeout=60,
        what="the restarted operator to resume every model",
    )
    assert restarted.metric("datajax_operator_reconciles_total", result="changed") == 0
    assert restarted.metric("datajax_operator_reconcile_errors_total") == 0
    after = _versions(admin_client, namespace)
    assert after == before, f"a restart rewrote (or duplicated) objects: {_writers(admin_client, namespace)}"


def test_liveness_and_metrics_endpoints(operators: Operators) -> None:
    operator = operators.ensure()
    assert operator.options.liveness_port is not None and operator.options.metrics_port is not None
    status, _ = operator.get(operator.options.liveness_port, "/healthz")
    assert status == 200
    status, text = operator.get(operator.options.metrics_port, "/metrics")
    assert status == 200
    for name in (
        "datajax_operator_reconciles_total",
        "datajax_operator_reconcile_errors_total",
        "datajax_operator_reconcile_duration_seconds_bucket",
        "datajax_operator_models",
        "datajax_operator_models_cost_breached",
    ):
        assert f"\n{name}" in text, name
