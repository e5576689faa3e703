"""A cluster without the LeaderWorkerSet CRD: a multi-host model says so instead of failing silently.

This needs its own control plane (the session's has the CRD installed), started for this module only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import EXAMPLES, GROUP, PLURAL, VERSION, Operators, load_example, wait_for
from kubernetes import client, config

from datajax_devtools.localcluster import LocalCluster

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bare_cluster(operators: Operators) -> Iterator[LocalCluster]:
    operators.stop()  # one operator at a time; the next test that needs one starts it again
    # a second control plane in the session: the API server alone is what this test needs
    with LocalCluster(crd_paths=[REPO / "crds"], controllers=False) as cluster:
        yield cluster


def test_multi_host_model_reports_the_missing_crd(bare_cluster: LocalCluster) -> None:
    api_client = config.new_client_from_config(config_file=str(bare_cluster.kubeconfig))
    operators = Operators(bare_cluster.kubeconfig)
    try:
        operators.ensure()
        core, custom = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
        core.create_namespace({"metadata": {"name": "serving"}})
        doc = load_example(next(p for p in EXAMPLES if "multihost" in p.name), "serving")
        name = doc["metadata"]["name"]
        custom.create_namespaced_custom_object(GROUP, VERSION, "serving", PLURAL, doc)

        def workload_condition() -> dict[str, Any] | None:
            status = custom.get_namespaced_custom_object(GROUP, VERSION, "serving", PLURAL, name).get(
                "status"
            )
            return next(
                (c for c in (status or {}).get("conditions", []) if c["type"] == "WorkloadAvailable"), None
            )

        condition = wait_for(workload_condition, what="WorkloadAvailable")
        assert condition["status"] == "False"
        assert condition["reason"] == "LeaderWorkerSetCRDMissing"
        assert "leaderworkerset.x-k8s.io/v1" in condition["message"]
        status = custom.get_namespaced_custom_object(GROUP, VERSION, "serving", PLURAL, name)["status"]
        assert status["phase"] == "Pending"
        assert status["placement"]["workload"] == "LeaderWorkerSet"
        # the Service is still there; no substitute workload was invented
        assert core.read_namespaced_service(name, "serving").metadata.owner_references[0].name == name
        assert client.AppsV1Api(api_client).list_namespaced_deployment("serving").items == []
        events = core.list_namespaced_event("serving", field_selector=f"involvedObject.name={name}").items
        assert any(e.type == "Warning" and e.reason == "LeaderWorkerSetCRDMissing" for e in events)
    finally:
        operators.stop()
        api_client.close()
