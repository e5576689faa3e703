"""`helm install` into the real API server, and `helm uninstall` removing what it created.

Every ci/ scenario is installed (the monitoring kinds served by minimal CRDs of ours, in
tests/crds/monitoring/), its objects are looked up on the server, then the release is uninstalled and
the same lookup must come back empty.

`helm test` cannot run here: no kubelet runs pods, so the hook pod would never finish. Instead the API
server's own Pod Security admission judges the hook pod and the operator's pod template at the
`restricted` level (a server-side dry run in a namespace that enforces it), next to a pod that must be
refused, so the check is known to bite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from datajax_devtools.localcluster import LocalCluster
from tests.chart.chartlib import CHART, CI_VALUES, binary, by_kind, one
from tests.chart.releases import Release, existing, ref, unique

pytestmark = pytest.mark.chart

MONITORING_CRDS = Path(__file__).resolve().parents[1] / "crds" / "monitoring"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


@pytest.fixture(scope="session")
def kubectl() -> str:
    return binary("kubectl")


@pytest.fixture(scope="session")
def monitoring_crds(local_cluster: LocalCluster) -> None:
    """ServiceMonitor, PrometheusRule, PodMonitoring, ClusterPodMonitoring and ClusterRules served."""
    docs = [
        d
        for f in sorted(MONITORING_CRDS.glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d and d.get("kind") == "CustomResourceDefinition"
    ]
    assert len(docs) == 5
    local_cluster.install_crds(docs)


def ensure_namespace(core: client.CoreV1Api, name: str, labels: dict[str, str] | None = None) -> None:
    try:
        core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
    except client.ApiException as err:
        if err.status != 409:
            raise


@pytest.fixture
def release(helm: str, helm_home: dict[str, str], kubeconfig: Path, admin_client: Any) -> Iterator[Release]:
    namespace = unique("helm")
    ensure_namespace(client.CoreV1Api(admin_client), namespace, RESTRICTED)
    yield Release(helm, helm_home, kubeconfig, unique("djx"), namespace)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_install_creates_and_uninstall_removes(  # noqa: PLR0917 (pytest fixtures)
    values: Path,
    release: Release,
    kubectl: str,
    kubeconfig: Path,
    admin_client: Any,
    monitoring_crds: None,
) -> None:
    scenario = yaml.safe_load(values.read_text()) or {}
    core = client.CoreV1Api(admin_client)
    for ns in scenario.get("watch", {}).get("namespaces", []):
        ensure_namespace(core, ns)  # a Role per watched namespace: they must exist first
    # A fixed fullnameOverride would collide across scenarios' cluster-scoped objects: keep names ours.
    sets = [f"fullnameOverride={release.name}-op"] if "fullnameOverride" in scenario else []

    release.install([values], sets)
    manifest = release.manifest()
    kinds = {d["kind"] for d in manifest}
    assert {
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Service",
    } <= kinds
    monitoring = scenario.get("monitoring", {})
    if monitoring.get("serviceMonitor", {}).get("enabled"):
        assert "ServiceMonitor" in kinds
    if monitoring.get("podMonitoring", {}).get("enabled"):
        assert {"ClusterPodMonitoring", "PodMonitoring"} & kinds
    alerts = scenario.get("alerts", {})
    if alerts.get("prometheusRule", {}).get("enabled"):
        assert "PrometheusRule" in kinds
    if alerts.get("gmpRules", {}).get("enabled"):
        assert "ClusterRules" in kinds

    stored = existing(kubectl, kubeconfig, manifest)
    assert sorted(ref(o) for o in stored) == sorted(ref(d) for d in manifest)
    for obj in stored:
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == release.name, ref(obj)
    # What the server holds is what was rendered (RBAC is what the least-privilege tests rely on).
    for kind in ("ClusterRole", "Role"):
        rendered = {ref(d): d["rules"] for d in by_kind(manifest, kind)}
        assert {ref(o): o["rules"] for o in by_kind(stored, kind)} == rendered
    # The test hook is not created by install (only `helm test` would).
    hooks = release.hooks()
    assert [h["kind"] for h in hooks] == ["Pod"]
    assert not existing(kubectl, kubeconfig, hooks)

    release.uninstall()
    left = existing(kubectl, kubeconfig, manifest)
    assert not left, f"left behind by helm uninstall: {[ref(o) for o in left]}"


def _dry_run_pod(core: client.CoreV1Api, namespace: str, pod: dict[str, Any]) -> None:
    core.create_namespaced_pod(namespace, pod, dry_run="All")


def test_pods_pass_restricted_pod_security_admission(release: Release, admin_client: Any) -> None:
    """helm test needs a kubelet; what can be checked here is that the API server's Pod Security
    admission accepts the hook pod and the operator pod at the restricted level."""
    core = client.CoreV1Api(admin_client)
    release.install()
    (hook,) = release.hooks()
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    _dry_run_pod(core, release.namespace, hook)

    template = one(release.manifest(), "Deployment")["spec"]["template"]
    operator_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{release.name}-operator-pod", **template["metadata"]},
        "spec": template["spec"],
    }
    _dry_run_pod(core, release.namespace, operator_pod)

    # The control: the same hook pod without its hardening is refused in this namespace.
    weakened = yaml.safe_load(yaml.safe_dump(hook))
    weakened["metadata"]["name"] += "-weak"
    del weakened["spec"]["containers"][0]["securityContext"]["capabilities"]
    with pytest.raises(client.ApiException) as refused:
        _dry_run_pod(core, release.namespace, weakened)
    assert refused.value.status == 403
    assert "restricted" in str(refused.value.body) and "capabilities" in str(refused.value.body)
    release.uninstall()


def test_chart_ships_only_our_crds_and_kopf_peering() -> None:
    """helm installs crds/ before the templates and never deletes them: the uninstall comparison above
    leaves them out on purpose; this pins which ones a user gets."""
    names = sorted(
        d["metadata"]["name"]
        for f in (CHART / "crds").glob("*.yaml")
        for d in yaml.safe_load_all(f.read_text())
        if d
    )
    assert names == [
        "clusterkopfpeerings.kopf.dev",
        "datajaxmodels.datajax.dev",
        "kopfpeerings.kopf.dev",
    ]
