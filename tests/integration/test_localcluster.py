"""The test control plane itself: the real server at the pinned version, RBAC enforced, CRDs served."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from datajax_devtools.localcluster import LocalCluster, find_binary

pytestmark = pytest.mark.integration

VERSIONS = Path(__file__).resolve().parents[2] / "tools" / "versions.env"


def _pinned_kubernetes_version() -> str:
    for line in VERSIONS.read_text().splitlines():
        if line.startswith("KUBERNETES_VERSION="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("KUBERNETES_VERSION missing from tools/versions.env")


def test_server_reports_the_pinned_version(local_cluster: LocalCluster) -> None:
    status, body = local_cluster.get("/version")
    assert status == 200
    assert json.loads(body)["gitVersion"] == _pinned_kubernetes_version()


def test_rbac_denies_a_service_account_without_roles(local_cluster: LocalCluster, admin_client: Any) -> None:
    from kubernetes import client

    core = client.CoreV1Api(admin_client)
    core.create_namespaced_service_account("default", {"metadata": {"name": "nobody"}})
    try:
        token = core.create_namespaced_service_account_token(
            "nobody", "default", {"spec": {"expirationSeconds": 600}}
        ).status.token
        review = client.AuthorizationV1Api(admin_client).create_subject_access_review(
            {
                "spec": {
                    "user": "system:serviceaccount:default:nobody",
                    "resourceAttributes": {"verb": "list", "resource": "secrets", "namespace": "default"},
                }
            }
        )
        assert review.status.allowed is False
        # and the server enforces it on a real request made with the token
        kubectl = find_binary("kubectl")
        result = subprocess.run(
            [
                str(kubectl),
                f"--kubeconfig={local_cluster.kubeconfig}",
                f"--token={token}",
                "get",
                "secrets",
                "-n",
                "default",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert "forbidden" in result.stderr.lower()
    finally:
        core.delete_namespaced_service_account("nobody", "default")


def test_leaderworkerset_crd_has_status_and_scale(local_cluster: LocalCluster, admin_client: Any) -> None:
    from kubernetes import client

    api = client.CustomObjectsApi(admin_client)
    group, version, plural = "leaderworkerset.x-k8s.io", "v1", "leaderworkersets"
    body = {
        "apiVersion": f"{group}/{version}",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "lws-probe"},
        "spec": {
            "replicas": 2,
            "leaderWorkerTemplate": {
                "size": 4,
                "workerTemplate": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}},
            },
        },
    }
    api.create_namespaced_custom_object(group, version, "default", plural, body)
    try:
        api.patch_namespaced_custom_object_status(
            group, version, "default", plural, "lws-probe", {"status": {"replicas": 2, "readyReplicas": 1}}
        )
        scale = api.get_namespaced_custom_object_scale(group, version, "default", plural, "lws-probe")
        assert scale["spec"]["replicas"] == 2
        assert scale["status"]["replicas"] == 2
        stored = api.get_namespaced_custom_object(group, version, "default", plural, "lws-probe")
        # schemaless pod templates are stored as written, not pruned
        worker = stored["spec"]["leaderWorkerTemplate"]["workerTemplate"]
        assert worker["spec"]["containers"][0]["image"] == "x:1"
        assert stored["status"]["readyReplicas"] == 1
    finally:
        api.delete_namespaced_custom_object(group, version, "default", plural, "lws-probe")
