"""Security of what the operator and the chart deploy, and of what the operator touches.

- The operator pod of the chart meets the Pod Security "restricted" profile: each rule checked here,
  and the API server's own PodSecurity admission (a namespace that enforces restricted) admits it.
- The serving pods: the sidecar container meets restricted; the vLLM container runs unprivileged,
  with no capability and no privilege escalation (baseline; see docs/security.md for why not more).
- The Hugging Face token appears only as a secretKeyRef: never in args, logs, status, Events, metrics.
- The operator neither adopts nor deletes objects it does not own.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_state import ClusterState, model_doc
from kubehelpers import EXAMPLES, REPO, RunningOperator, load_example, wait_for
from operator_process import OPERATOR, OperatorProcess
from pod_security import baseline_violations, restricted_container_violations, restricted_violations

from datajax_devtools.localcluster import LocalCluster, find_binary
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan
from datajax_operator.render.objects import render_objects

pytestmark = pytest.mark.integration

CHART = REPO / "charts" / "datajax-operator"


def _helm_template(tmp_path: Path, *sets: str) -> list[dict[str, Any]]:
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(tmp_path / var.lower())
    env.pop("KUBECONFIG", None)
    argv = [str(find_binary("helm")), "template", "djx", str(CHART), "-n", "datajax-system"]
    argv += [a for s in sets for a in ("--set", s)]  # helm's default Kubernetes version, as a user runs it
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _operator_pod(tmp_path: Path, *sets: str) -> dict[str, Any]:
    [deployment] = [d for d in _helm_template(tmp_path, *sets) if d["kind"] == "Deployment"]
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def _serving_pods() -> dict[str, dict[str, Any]]:
    """Pod specs of every example's serving pods (leader and, for multi-host, worker)."""
    pods = {}
    for path in EXAMPLES:
        doc = load_example(path, "ns")
        doc["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
        model = DataJaxModel.model_validate(doc)
        for obj in render_objects(model, make_plan(model, OperatorConfig()), OperatorConfig()):
            if obj["kind"] == "Deployment":
                pods[f"{path.stem}/pod"] = obj["spec"]["template"]["spec"]
            elif obj["kind"] == "LeaderWorkerSet":
                template = obj["spec"]["leaderWorkerTemplate"]
                pods[f"{path.stem}/leader"] = template["leaderTemplate"]["spec"]
                pods[f"{path.stem}/worker"] = template["workerTemplate"]["spec"]
    return pods


def _enforcing_namespace(state: ClusterState, level: str) -> str:
    name = f"pss-{level}-{uuid.uuid4().hex[:6]}"
    labels = {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    status, data = state.call("POST", "/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})
    assert status == 201, data
    return name


def _admit(state: ClusterState, namespace: str, spec: dict[str, Any]) -> tuple[int, str]:
    """A dry-run create of a Pod with this spec: what the PodSecurity admission says of it."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "check-"}, "spec": spec}
    status, data = state.call("POST", f"/api/v1/namespaces/{namespace}/pods", pod, query=[("dryRun", "All")])
    return status, data.get("message", "") if isinstance(data, dict) else str(data)


@pytest.mark.parametrize(
    "sets",
    [(), ("leaderElection.enabled=true", "watch.allNamespaces=false", "watch.namespaces={a,b}")],
    ids=["defaults", "peering-namespaced"],
)
def test_operator_pod_is_restricted(sets: tuple[str, ...], tmp_path: Path, state: ClusterState) -> None:
    pod = _operator_pod(tmp_path, *sets)
    assert restricted_violations(pod) == []
    # each rule, spelled out, as the chart sets it
    psc, [container] = pod["securityContext"], pod["containers"]
    sc = container["securityContext"]
    assert psc["runAsNonRoot"] is True and sc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert psc["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost")
    assert not sc.get("privileged")
    assert not any(pod.get(f) for f in ("hostNetwork", "hostPID", "hostIPC"))
    assert all(set(v) - {"name"} <= {"configMap", "emptyDir", "projected", "secret"} for v in pod["volumes"])
    assert sc["readOnlyRootFilesystem"] is True

    # The API server's PodSecurity admission agrees, and refuses a pod that breaks a rule.
    restricted = _enforcing_namespace(state, "restricted")
    status, message = _admit(state, restricted, pod)
    assert status == 201, message
    broken = dict(pod, hostNetwork=True)
    status, message = _admit(state, restricted, broken)
    assert status == 403 and "violates PodSecurity" in message, message


def test_serving_pods_sidecar_restricted_vllm_unprivileged(state: ClusterState) -> None:
    baseline = _enforcing_namespace(state, "baseline")
    restricted = _enforcing_namespace(state, "restricted")
    for where, pod in _serving_pods().items():
        assert baseline_violations(pod) == [], where
        containers = {c["name"]: c for c in pod["containers"]}
        if "datajax-sidecar" in containers:
            assert restricted_container_violations(containers["datajax-sidecar"], pod) == [], where
            assert containers["datajax-sidecar"]["securityContext"]["readOnlyRootFilesystem"] is True
        vllm = containers["vllm"]["securityContext"]
        assert vllm["privileged"] is False, where
        assert vllm["allowPrivilegeEscalation"] is False, where
        assert vllm["capabilities"] == {"drop": ["ALL"]}, where
        assert vllm["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert "hostPath" not in str(pod["volumes"]), where
        assert int(containers["vllm"]["resources"]["limits"]["google.com/tpu"]) >= 1, where
        # Real admission: baseline admits the whole pod; restricted refuses it for the vLLM container's
        # user only (the image runs as root), never for the sidecar.
        status, message = _admit(state, baseline, pod)
        assert status == 201, f"{where}: {message}"
        status, message = _admit(state, restricted, pod)
        assert status == 403, f"{where}: restricted admitted a root vLLM container"
        assert '"vllm"' in message and "datajax-sidecar" not in message, f"{where}: {message}"
        assert "runAsNonRoot" in message and "allowPrivilegeEscalation" not in message, f"{where}: {message}"


def test_hf_token_only_as_secret_key_ref(
    state: ClusterState, namespace: str, local_cluster: LocalCluster, tmp_path: Path, solo: None
) -> None:
    token = "hf_" + secrets.token_urlsafe(24)
    encoded = base64.b64encode(token.encode()).decode()
    status, data = state.call(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        {"metadata": {"name": "hf"}, "stringData": {"token": token}},
    )
    assert status == 201, data
    log = tmp_path / "operator.log"
    proc = OperatorProcess(local_cluster.kubeconfig, log, "--log-format", "json")
    try:
        proc.wait_ready()
        doc = model_doc("gated", namespace)
        doc["spec"]["model"]["hfTokenSecretRef"] = {"name": "hf", "key": "token"}
        state.create_model(namespace, doc)
        deployment = wait_for(lambda: state.child(namespace, "Deployment", "gated"), 60, "the Deployment")
        # A planner rejection and a recovery: conditions, messages and Events of both kinds.
        state.patch_model_spec(
            namespace, "gated", {"model": {"parametersBillions": 500, "dtype": "bfloat16"}}
        )
        wait_for(
            lambda: (state.condition(namespace, "gated", "SpecValid") or {}).get("status") == "False",
            60,
            "SpecValid=False",
        )
        state.patch_model_spec(namespace, "gated", {"model": {"parametersBillions": 8}})
        deployment = wait_for(
            lambda: state.child(namespace, "Deployment", "gated"), 60, "the Deployment back"
        )

        [vllm] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"]
        [hf] = [e for e in vllm["env"] if e["name"] == "HF_TOKEN"]
        assert hf == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
        surfaces = {
            "deployment": str(deployment),
            "service": str(state.child(namespace, "Service", "gated")),
            "model (spec, status, annotations)": str(state.model(namespace, "gated")),
            "events": str(state.events(namespace)),
            "operator log": proc.logs(),
            "operator metrics": proc.metrics_text(),
            "plan CLI": _plan_cli(tmp_path, state.model(namespace, "gated") or {}),
        }
        assert all(surfaces.values())
        for where, text in surfaces.items():
            assert token not in text and encoded not in text, f"the HF token leaked into the {where}"
    finally:
        proc.stop()


def _plan_cli(tmp_path: Path, model: dict[str, Any]) -> str:
    """What `datajax-operator plan -o yaml` prints for the stored model."""
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump({k: model[k] for k in ("apiVersion", "kind", "metadata", "spec")}))
    done = subprocess.run(
        [str(OPERATOR), "plan", "-f", str(path), "-o", "yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_objects_it_does_not_own_are_neither_adopted_nor_deleted(
    state: ClusterState, namespace: str, operator: RunningOperator
) -> None:
    # Someone else's Deployment and Service, with the names the model's children would get.
    foreign = {
        "Deployment": (
            f"/apis/apps/v1/namespaces/{namespace}/deployments",
            {
                "metadata": {"name": "mine", "labels": {"app": "theirs"}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "theirs"}},
                    "template": {
                        "metadata": {"labels": {"app": "theirs"}},
                        "spec": {"containers": [{"name": "web", "image": "registry.example/web:1.0"}]},
                    },
                },
            },
        ),
        "Service": (
            f"/api/v1/namespaces/{namespace}/services",
            {"metadata": {"name": "mine"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "theirs"}}},
        ),
    }
    for path, body in foreign.values():
        status, data = state.call("POST", path, body)
        assert status == 201, data
    before = {kind: state.child(namespace, kind, "mine") for kind in foreign}

    state.create_model(namespace, model_doc("mine", namespace))
    condition = wait_for(
        lambda: state.condition(namespace, "mine", "WorkloadAvailable"), 60, "WorkloadAvailable"
    )
    assert condition["status"] == "False" and condition["reason"] == "ChildNotOwned", condition
    assert "Deployment/mine" in condition["message"] and "Service/mine" in condition["message"]
    ready = state.condition(namespace, "mine", "Ready") or {}
    assert ready.get("status") == "False"
    # posted right after the status write that carries the condition
    wait_for(
        lambda: any(
            e["reason"] == "ChildNotOwned" and e["type"] == "Warning" for e in state.events(namespace)
        ),
        30,
        "a ChildNotOwned Warning Event",
    )
    # Two resync periods later nothing of theirs has changed: no owner reference, no field of ours.
    unchanged = operator.metric("datajax_operator_reconciles_total", result="unchanged")
    wait_for(
        lambda: operator.metric("datajax_operator_reconciles_total", result="unchanged") >= unchanged + 2,
        30,
        "two resyncs",
    )
    # (Their Deployment's status and revision annotation move: the Deployment controller runs its pod.)
    for kind, obj in before.items():
        now = state.child(namespace, kind, "mine") or {}
        assert now["spec"] == (obj or {})["spec"], kind
        assert now["metadata"].get("labels") == (obj or {})["metadata"].get("labels"), kind
        assert not now["metadata"].get("ownerReferences"), kind
        assert "datajax-operator" not in {m["manager"] for m in now["metadata"]["managedFields"]}, kind

    # Deleting the model leaves them: the garbage collector removes only what names the model as its
    # owner, and the operator deleted nothing either.
    status, _ = state.call("DELETE", f"/apis/datajax.dev/v1alpha1/namespaces/{namespace}/datajaxmodels/mine")
    assert status == 200
    wait_for(lambda: state.model(namespace, "mine") is None, 30, "model deleted")
    for kind, obj in before.items():
        now = state.child(namespace, kind, "mine") or {}
        assert now["metadata"]["uid"] == (obj or {})["metadata"]["uid"], f"{kind} was deleted"
        assert now["spec"] == (obj or {})["spec"], kind
