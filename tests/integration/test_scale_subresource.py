"""The scale subresource: `kubectl scale djm` and what an HPA or KEDA reads, on the real API server.

The operator runs in-process; the session's control plane runs the real Deployment, ReplicaSet and
EndpointSlice controllers, kube-scheduler and kwok's TPU nodes, so a count reaches pods and their
availability comes back. With spec.scaling, the operator's own decision drives the count (the traffic
path is tests/e2e/test_autoscaling.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import GROUP, PLURAL, VERSION, RunningOperator, wait_for
from kubernetes import client
from test_reconcile import Api

from datajax_devtools.localcluster import find_binary

pytestmark = pytest.mark.integration

SIZED = {"name": "meta-llama/Llama-3.1-8B-Instruct", "parametersBillions": 8, "dtype": "bfloat16"}


def _model(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataJaxModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": SIZED, "tpu": {"generation": "v6e", "topology": "2x4"}, **spec},
    }


def kubectl(kubeconfig: Path, namespace: str, *args: str) -> str:
    done = subprocess.run(
        [str(find_binary("kubectl")), f"--kubeconfig={kubeconfig}", "-n", namespace, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def api(admin_client: Any) -> Api:
    return Api(admin_client)


def deployment_replicas(api: Api, namespace: str, name: str) -> int | None:
    found = api.deployment(namespace, name)
    return None if found is None else int(found["spec"]["replicas"])


def test_kubectl_scale_sets_the_slices_and_the_scale_subresource_reports_them(
    api: Api, namespace: str, operator: RunningOperator, kubeconfig: Path
) -> None:
    api.create_model(_model(namespace, "scaled"))
    wait_for(lambda: deployment_replicas(api, namespace, "scaled") == 1, what="the Deployment at 1")

    assert "scaled" in kubectl(kubeconfig, namespace, "scale", "djm", "scaled", "--replicas=3")
    wait_for(lambda: deployment_replicas(api, namespace, "scaled") == 3, what="the Deployment at 3")
    # the Deployment and ReplicaSet controllers make the pods, kube-scheduler places them on the v6e
    # pool and kwok runs them: the availability comes back through the real path
    wait_for(
        lambda: (api.model(namespace, "scaled").get("status") or {}).get("availableReplicas") == 3,
        timeout=90,
        what="status.availableReplicas 3",
    )

    scale = json.loads(
        kubectl(kubeconfig, namespace, "get", "djm", "scaled", "--subresource=scale", "-o", "json")
    )
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
    assert scale["status"]["replicas"] == 3
    # what an HPA lists pods by: the serving pods of this model, one per slice
    selector = scale["status"]["selector"]
    service = api.service(namespace, "scaled")
    assert service is not None
    assert selector == ",".join(f"{k}={v}" for k, v in sorted(service["spec"]["selector"].items()))
    assert "app.kubernetes.io/instance=scaled" in selector.split(",")


def test_the_scale_subresource_refuses_a_negative_count(
    namespace: str, operator: RunningOperator, admin_client: Any
) -> None:
    custom = client.CustomObjectsApi(admin_client)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _model(namespace, "neg"))
    with pytest.raises(client.ApiException) as refused:
        custom.patch_namespaced_custom_object_scale(
            GROUP, VERSION, namespace, PLURAL, "neg", {"spec": {"replicas": -1}}
        )
    assert refused.value.status == 422
    assert "spec.replicas" in refused.value.body


def test_with_spec_scaling_the_operator_owns_the_count_and_kubectl_scale_restarts_it(
    api: Api, namespace: str, operator: RunningOperator, kubeconfig: Path
) -> None:
    api.create_model(
        _model(
            namespace,
            "owned",
            replicas=2,
            slo={"p95LatencySeconds": 2},
            scaling={"minReplicas": 1, "maxReplicas": 4, "scaleDownStabilization": "5s"},
        )
    )
    wait_for(
        lambda: deployment_replicas(api, namespace, "owned") == 2, what="the Deployment at spec.replicas 2"
    )
    status = wait_for(
        lambda: (api.model(namespace, "owned").get("status") or {}).get("scaling"), what="status.scaling"
    )
    assert status["desiredReplicas"] == 2 and status["capacitySource"] == "Roofline"
    assert status["expectedColdStartSeconds"] == 2400  # the startup probe's allowance: nothing measured yet
    conditions = {c["type"]: c for c in api.model(namespace, "owned")["status"]["conditions"]}
    # no sidecar answers (no pods run here): the autoscaler holds the count and says why
    assert conditions["ScalingFeasible"]["status"] == "Unknown"
    assert conditions["ScalingFeasible"]["reason"] == "NoMetrics"

    kubectl(kubeconfig, namespace, "scale", "djm", "owned", "--replicas=9")  # clamped to maxReplicas
    wait_for(
        lambda: deployment_replicas(api, namespace, "owned") == 4, what="the Deployment at maxReplicas 4"
    )
    assert api.model(namespace, "owned")["spec"]["replicas"] == 9  # the user's value is never edited
    wait_for(
        lambda: (api.model(namespace, "owned").get("status") or {}).get("replicas") == 4,
        what="status.replicas 4",
    )


def test_kubectl_explain_documents_spec_scaling(
    operator: RunningOperator, kubeconfig: Path, namespace: str
) -> None:
    text = kubectl(kubeconfig, namespace, "explain", "datajaxmodel.spec.scaling")
    for field in ("minReplicas", "maxReplicas", "policy", "scaleToZeroAfter", "scaleDownStabilization"):
        assert field in text
    assert "Autoscaling on the SLO and the cost ceiling at once" in text, text
