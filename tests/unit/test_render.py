"""The renderer: golden manifests of every example, and the properties a cluster operator relies on."""

import json
from pathlib import Path
from typing import Any

import pytest
from djm_fixtures import EXAMPLES, check_golden, doc_with, load_example, model_with

from datajax_operator.api import DataJaxModel
from datajax_operator.cli import dump_yaml
from datajax_operator.plan import OperatorConfig, make_plan
from datajax_operator.render import SPEC_HASH_ANNOTATION, base_name, render_objects
from datajax_runtime.settings import resolve

CONFIG = OperatorConfig()


def _render(model: DataJaxModel, replicas: int | None = None) -> list[dict[str, Any]]:
    """The workload and the Service (the settings ConfigMap, always first, has tests of its own)."""
    objects = render_objects(model, make_plan(model, CONFIG), CONFIG, replicas=replicas)
    assert objects[0]["kind"] == "ConfigMap"
    return objects[1:]


def _pod_specs(workload: dict[str, Any]) -> list[dict[str, Any]]:
    if workload["kind"] == "Deployment":
        return [workload["spec"]["template"]["spec"]]
    lwt = workload["spec"]["leaderWorkerTemplate"]
    return [lwt["leaderTemplate"]["spec"], lwt["workerTemplate"]["spec"]]


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod["containers"] if c["name"] == name)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_golden_manifests(path: Path) -> None:
    model = load_example(path)
    objects = render_objects(model, make_plan(model, CONFIG), CONFIG)
    check_golden(f"{path.stem}.objects.yaml", "---\n".join(dump_yaml(o) for o in objects))


def test_rendering_is_deterministic() -> None:
    for path in EXAMPLES:
        assert _render(load_example(path)) == _render(load_example(path))


def test_single_host_is_a_deployment_with_both_containers() -> None:
    workload, service = _render(model_with())
    assert workload["kind"] == "Deployment" and workload["metadata"]["name"] == "m"
    pod = workload["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["vllm", "datajax-sidecar"]
    vllm = _container(pod, "vllm")
    assert vllm["image"] == "vllm/vllm-tpu:v0.29.0"
    assert vllm["command"] == ["vllm", "serve"]
    assert vllm["resources"]["limits"] == {"google.com/tpu": "8"}
    # No size hints: the weights' emptyDir is unsized and no disk is requested (the plan warns).
    assert vllm["resources"]["requests"] == {"google.com/tpu": "8"}
    assert vllm["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert vllm["startupProbe"]["httpGet"]["path"] == "/health"
    assert vllm["startupProbe"]["periodSeconds"] * vllm["startupProbe"]["failureThreshold"] >= 30 * 60
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    assert pod["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice",
        "cloud.google.com/gke-tpu-topology": "2x4",
        "node.kubernetes.io/instance-type": "ct6e-standard-8t",  # 2x4 is also two 4-chip VMs
    }
    assert {"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert service["kind"] == "Service" and service["metadata"]["name"] == "m"
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("http", 8000), ("metrics", 9400)]


def test_multi_host_is_a_leader_worker_set_with_ray() -> None:
    model = model_with(tpu={"generation": "v6e", "topology": "4x4"})
    workload, service = _render(model)
    assert workload["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    lwt = workload["spec"]["leaderWorkerTemplate"]
    assert lwt["size"] == 4
    leader, worker = lwt["leaderTemplate"]["spec"], lwt["workerTemplate"]["spec"]
    assert [c["name"] for c in leader["containers"]] == ["vllm", "datajax-sidecar"]
    assert [c["name"] for c in worker["containers"]] == ["vllm"]
    for pod in (leader, worker):
        vllm = _container(pod, "vllm")
        assert {"name": "TPU_MULTIHOST_BACKEND", "value": "ray"} in vllm["env"]
        assert vllm["resources"]["limits"] == {"google.com/tpu": "4"}
    leader_vllm = _container(leader, "vllm")
    assert "ray start --head" in leader_vllm["command"][2] and "exec vllm serve" in leader_vllm["command"][2]
    # One pipeline stage per host, tensor parallel within it (tpu-inference's tested multi-host mode).
    assert {"--tensor-parallel-size=4", "--pipeline-parallel-size=4"} <= set(leader_vllm["args"])
    assert "LWS_LEADER_ADDRESS" in _container(worker, "vllm")["command"][2]
    assert "startupProbe" not in _container(worker, "vllm")
    assert service["spec"]["selector"]["datajax.dev/role"] == "leader"
    assert lwt["leaderTemplate"]["metadata"]["labels"]["datajax.dev/role"] == "leader"


def test_sidecar_follows_the_contract_and_is_locked_down() -> None:
    model = model_with(
        slo={"p95LatencySeconds": 2.5},
        plan={"configMapRef": {"name": "bundle-v1"}},
    )
    pod = _render(model)[0]["spec"]["template"]["spec"]
    sidecar = _container(pod, "datajax-sidecar")
    assert sidecar["command"] == ["datajax-sidecar"]
    assert sidecar["args"] == [
        "serve", "--upstream", "http://127.0.0.1:8000/metrics", "--port", "9400",
        "--settings", "/etc/datajax/sidecar/settings.json", "--interval", "5s",
        "--plan-status", "/var/run/datajax/plan-status.json",
        "--xla-cache", make_plan(model, CONFIG).storage.xla_cache_dir, "--model", "m",
    ]  # fmt: skip
    assert {"name": "sidecar-settings", "mountPath": "/etc/datajax/sidecar", "readOnly": True} in sidecar[
        "volumeMounts"
    ]
    assert {"name": "sidecar-settings", "configMap": {"name": "m-sidecar"}} in pod["volumes"]
    ctx = sidecar["securityContext"]
    assert ctx["runAsNonRoot"] and ctx["readOnlyRootFilesystem"] and not ctx["allowPrivilegeEscalation"]
    assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sidecar["ports"] == [{"name": "metrics", "containerPort": 9400, "protocol": "TCP"}]
    assert "google.com/tpu" not in sidecar["resources"]["limits"]


def test_plan_bundle_is_mounted_from_the_users_configmap() -> None:
    model = model_with(
        plan={"configMapRef": {"name": "plan-v2", "key": "p.json"}, "waveSpecRef": {"name": "ws"}}
    )
    objects = _render(model)
    assert [o["kind"] for o in objects] == ["Deployment", "Service"]  # the bundle is not copied
    pod = objects[0]["spec"]["template"]["spec"]
    vllm = _container(pod, "vllm")
    assert vllm["image"] == CONFIG.runtime_image  # the plugin that registers plans lives there
    assert {"name": "DATAJAX_PLAN_BUNDLE", "value": "/etc/datajax/plan/bundle.json"} in vllm["env"]
    assert {"name": "DATAJAX_PLAN_STATUS", "value": "/var/run/datajax/plan-status.json"} in vllm["env"]
    assert {"name": "datajax-plan", "mountPath": "/etc/datajax/plan", "readOnly": True} in vllm[
        "volumeMounts"
    ]
    assert {"name": "datajax-run", "mountPath": "/var/run/datajax"} in vllm["volumeMounts"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "datajax-plan"]
    assert volume["projected"]["sources"] == [
        {"configMap": {"name": "plan-v2", "items": [{"key": "p.json", "path": "bundle.json"}]}},
    ]  # the wave spec ("ws") is the operator's planning input: read through the API, not mounted


def test_hf_token_only_through_a_secret_reference() -> None:
    model = model_with(model={"name": "org/gated", "hfTokenSecretRef": {"name": "hf"}})
    vllm = _container(_render(model)[0]["spec"]["template"]["spec"], "vllm")
    [token] = [e for e in vllm["env"] if e["name"] == "HF_TOKEN"]
    assert token == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "hf_api_token"}}}


def test_user_env_reaches_the_pod_in_the_core_v1_shape() -> None:
    """The typed valueFrom renders back exactly as written: a quantity stays an integer or a string."""
    env = [
        {"name": "A", "value": "1"},
        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "D", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": 1}}},
        {"name": "E", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": True}}},
        {"name": "F", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    vllm = _container(_render(model_with(serving={"env": env}))[0]["spec"]["template"]["spec"], "vllm")
    assert vllm["env"][-len(env) :] == env


def test_spot_and_reservation_selectors() -> None:
    spot = _render(model_with(tpu={"generation": "v6e", "topology": "2x4", "spot": True}))[0]
    pod = spot["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["cloud.google.com/gke-spot"] == "true"
    assert any(t["key"] == "cloud.google.com/gke-spot" for t in pod["tolerations"])
    reserved = _render(model_with(tpu={"generation": "v6e", "topology": "2x4", "reservation": "res-a"}))[0]
    selector = reserved["spec"]["template"]["spec"]["nodeSelector"]
    assert selector["cloud.google.com/reservation-name"] == "res-a"
    assert selector["cloud.google.com/reservation-affinity"] == "specific"
    assert "cloud.google.com/gke-spot" not in selector


def test_owner_reference_only_with_a_uid() -> None:
    offline = _render(model_with())
    assert all("ownerReferences" not in o["metadata"] for o in offline)
    doc = doc_with()
    doc["metadata"]["uid"] = "0b1c-uid"
    for obj in _render(DataJaxModel.model_validate(doc)):
        [ref] = obj["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "datajax.dev/v1alpha1",
            "kind": "DataJaxModel",
            "name": "m",
            "uid": "0b1c-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert obj["metadata"]["namespace"] == "ns"


def test_labels_follow_the_contract() -> None:
    for obj in _render(model_with()):
        assert obj["metadata"]["labels"] == {
            "app.kubernetes.io/name": "datajax-model",
            "app.kubernetes.io/instance": "m",
            "app.kubernetes.io/managed-by": "datajax-operator",
            "app.kubernetes.io/component": "serving",
        }


def test_spec_changes_outside_the_pod_do_not_touch_the_template() -> None:
    def template(**changes: Any) -> tuple[Any, str]:
        workload = _render(model_with(**changes))[0]
        return workload["spec"]["template"], workload["metadata"]["annotations"][SPEC_HASH_ANNOTATION]

    base_template, base_hash = template()
    cost_changes = {
        "ceilingUSDPerMillionTokens": 1.5,
        "basis": "output",
        "usdPerChipHour": 2.0,
        "window": "5m",
        "action": "Suspend",
        "minTokensPerSecond": 5,
    }
    for changes in ({"replicas": 3}, {"cost": cost_changes}, {"slo": {"p95LatencySeconds": 2}}):
        changed_template, changed_hash = template(**changes)
        assert changed_template == base_template and changed_hash != base_hash
    changed_template, _ = template(model={"name": "org/model", "maxModelLen": 2048})
    assert changed_template != base_template
    assert SPEC_HASH_ANNOTATION not in str(base_template)


@pytest.mark.parametrize(
    "name",
    ["m", "llama3-8b", "9starts-with-digit", "a.b.c", "x" * 253, "model-" + "y" * 60, "dots.and-" + "z" * 50],
)
def test_names_are_valid_and_stable(name: str) -> None:
    short = base_name(name)
    assert len(short) <= 45 and short[0].isalpha() and short[-1].isalnum()
    assert all(c.isalnum() or c == "-" for c in short) and short == short.lower()
    assert base_name(name) == short
    if len(name) <= 45 and name[0].isalpha() and "." not in name:
        assert short == name


def test_distinct_long_names_stay_distinct() -> None:
    assert base_name("a" * 60 + "1") != base_name("a" * 60 + "2")
    assert base_name("a.b") != base_name("a-b")


def test_serving_pods_carry_the_tpu_labels_monitoring_groups_by() -> None:
    labels = _render(model_with())[0]["spec"]["template"]["metadata"]["labels"]
    assert labels["datajax.dev/tpu-generation"] == "v6e"
    assert labels["datajax.dev/tpu-topology"] == "2x4"


def test_sidecar_settings_configmap_carries_every_cost_setting() -> None:
    doc = doc_with(
        cost={"ceilingUSDPerMillionTokens": 2.5, "basis": "output", "window": "6s", "minTokensPerSecond": 40},
        slo={"p95LatencySeconds": 1.5},
    )
    doc["metadata"]["uid"] = "u-1"
    model = DataJaxModel.model_validate(doc)
    objects = render_objects(model, make_plan(model, CONFIG), CONFIG)
    [config_map] = [o for o in objects if o["kind"] == "ConfigMap"]
    assert config_map["metadata"]["name"] == "m-sidecar"
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert json.loads(config_map["data"]["settings.json"]) == {
        "chips": 8,
        "usdPerChipHour": 2.7,
        "ceilingUSDPerMillionTokens": 2.5,
        "basis": "output",
        "window": "6s",
        "minTokensPerSecond": 40.0,
        "sloP95Seconds": 1.5,
    }
    # what the sidecar makes of it: the same figures it would take from flags
    settings = resolve({}, json.loads(config_map["data"]["settings.json"]))
    assert settings.pricing.usd_per_hour == pytest.approx(21.6)
    assert settings.window_seconds == 6.0 and settings.slo_p95_seconds == 1.5
    assert settings.pricing.min_tokens_per_second == 40.0


@pytest.mark.parametrize("topology", ["2x4", "4x4"])
def test_replicas_follow_the_enforcement_not_only_the_spec(topology: str) -> None:
    model = model_with(tpu={"generation": "v6e", "topology": topology}, replicas=3)
    assert _render(model)[0]["spec"]["replicas"] == 3
    assert _render(model, replicas=1)[0]["spec"]["replicas"] == 1
    assert _render(model, replicas=0)[0]["spec"]["replicas"] == 0
    assert _render(model, replicas=1) == _render(model, replicas=1)
