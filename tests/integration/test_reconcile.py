"""The operator against a real kube-apiserver: children, status, readiness, topology changes, deletion."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import EXAMPLES, GROUP, PLURAL, VERSION, RunningOperator, cordoned, load_example, wait_for
from kubernetes import client

from datajax_devtools.localcluster import find_binary
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan
from datajax_operator.render.objects import render_objects

pytestmark = pytest.mark.integration

LWS = ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets")


class Api:
    """Typed-client shortcuts for what these tests read and write."""

    def __init__(self, api_client: Any) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def create_model(self, doc: dict[str, Any]) -> dict[str, Any]:
        ns = doc["metadata"]["namespace"]
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, doc)
        return result

    def model(self, ns: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
        return result

    def patch_spec(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, {"spec": spec})

    def condition(self, ns: str, name: str, type_: str) -> dict[str, Any] | None:
        status = self.model(ns, name).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == type_), None)

    def deployment(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return self.apps.api_client.sanitize_for_serialization(
                self.apps.read_namespaced_deployment(name, ns)
            )  # type: ignore[no-any-return]
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def lws(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.custom.get_namespaced_custom_object(*LWS[:2], ns, LWS[2], name)
            return result
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def service(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return self.core.api_client.sanitize_for_serialization(
                self.core.read_namespaced_service(name, ns)
            )  # type: ignore[no-any-return]
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def config_map(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            return self.core.api_client.sanitize_for_serialization(
                self.core.read_namespaced_config_map(name, ns)
            )  # type: ignore[no-any-return]
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def events(self, ns: str, name: str) -> list[Any]:
        items = self.core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
        return list(items)


@pytest.fixture
def api(admin_client: Any) -> Api:
    return Api(admin_client)


def rendered(doc: dict[str, Any], uid: str) -> list[dict[str, Any]]:
    """What the renderer makes of the stored model (the operator must have applied exactly this)."""
    stored = dict(doc, metadata=dict(doc["metadata"], uid=uid))
    model = DataJaxModel.model_validate(stored)
    return render_objects(model, make_plan(model, OperatorConfig()), OperatorConfig())


def assert_subset(expected: Any, actual: Any, path: str = "") -> None:
    """Every field we rendered is stored with our value (the server may add defaults around it)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing"
            assert_subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_subset(e, a, f"{path}[{i}]")
    else:
        assert expected == actual or str(expected) == str(actual), f"{path}: {expected!r} != {actual!r}"


def workload_of(api: Api, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    return api.deployment(ns, name) if kind == "Deployment" else api.lws(ns, name)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_gets_its_children_and_status(
    example: Path, api: Api, namespace: str, operator: RunningOperator
) -> None:
    doc = load_example(example, namespace)
    name = doc["metadata"]["name"]
    created = api.create_model(doc)
    uid = created["metadata"]["uid"]

    status = wait_for(
        lambda: (
            (api.model(namespace, name).get("status") or {}).get("observedGeneration")
            and api.model(namespace, name)["status"]
        ),
        what=f"status of {name}",
    )
    expected = rendered(created, uid)
    for obj in expected:
        kind, child_name = obj["kind"], obj["metadata"]["name"]
        stored = (
            api.service(namespace, child_name)
            if kind == "Service"
            else api.config_map(namespace, child_name)
            if kind == "ConfigMap"
            else workload_of(api, namespace, kind, child_name)
        )
        assert stored is not None, f"{kind}/{child_name} not created"
        field = "data" if kind == "ConfigMap" else "spec"
        assert_subset(obj[field], stored[field], f"{kind}.{field}")
        assert_subset(obj["metadata"]["labels"], stored["metadata"]["labels"], f"{kind}.labels")
        [owner] = stored["metadata"]["ownerReferences"]
        assert owner["uid"] == uid and owner["controller"] is True and owner["kind"] == "DataJaxModel"

    plan = make_plan(DataJaxModel.model_validate(created), OperatorConfig())
    assert status["phase"] == "Progressing"
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert status["placement"]["workload"] == plan.placement.workload
    assert status["placement"]["chips"] == plan.placement.chips
    assert status["mesh"]["tensorParallel"] == plan.mesh.tensor_parallel
    assert status["mesh"]["pipelineParallel"] == plan.mesh.pipeline_parallel
    assert status["mesh"]["shape"] == [1, plan.mesh.tensor_parallel]  # what each engine process builds
    # where the compile cache lives; no sidecar has reported a start yet
    assert status["compileCache"] == {
        "path": plan.storage.xla_cache_dir,
        "volume": plan.storage.xla_cache_volume,
    }
    assert status["endpoint"].startswith(f"http://{name}.{namespace}.svc:8000")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["SpecValid"]["status"] == "True"
    assert conditions["WorkloadAvailable"]["status"] == "False"
    assert conditions["Ready"]["status"] == "False"
    # kopf's bookkeeping lives in annotations under our group, never in status
    annotations = api.model(namespace, name)["metadata"].get("annotations", {})
    assert not any(k.startswith("kopf.zalando.org") for k in annotations)
    assert set(status) <= {
        "phase",
        "observedGeneration",
        "placement",
        "mesh",
        "compileCache",
        "endpoint",
        "conditions",
        "costEvaluation",
        "latencyEvaluation",  # the 70B example sets an SLO
        "plannedCost",
        "replicas",  # the scale subresource's status.replicas and status.selector
        "availableReplicas",
        "selector",
    }
    # the provisioned price is known from the first pass, before anything is measured
    assert status["plannedCost"]["usdPerHour"] == pytest.approx(plan.cost.usd_per_hour)
    assert status["plannedCost"]["breakEvenTokensPerSecond"] == pytest.approx(
        plan.cost.breakeven_tokens_per_second, abs=1e-3
    )
    # no sidecar endpoint exists (no kubelet runs the pods): nothing to judge, and said so
    # No sidecar answers in this tier: no endpoints yet, or kwok's Ready pods listed but not scraped.
    assert conditions["MetricsAvailable"]["reason"] in ("NoEndpoints", "ScrapeFailed")
    assert conditions["CostCeilingBreached"]["status"] == "Unknown"
    assert conditions["CostCeilingBreached"]["reason"] == "NoMetrics"


def test_deployment_available_makes_the_model_ready(
    api: Api, namespace: str, operator: RunningOperator, kubeconfig: Path
) -> None:
    doc = load_example(next(p for p in EXAMPLES if "8b" in p.name), namespace)
    name = doc["metadata"]["name"]
    with cordoned(api.apps.api_client, "tpu-v6e-2x4") as uncordon:  # the pod waits for a node
        api.create_model(doc)
        wait_for(lambda: api.deployment(namespace, name), what="the Deployment")
        not_ready = wait_for(lambda: api.condition(namespace, name, "Ready"), what="a Ready condition")
        assert not_ready["status"] == "False"
        spec_valid = api.condition(namespace, name, "SpecValid")
        assert spec_valid is not None and spec_valid["status"] == "True"
        # the Deployment controller's ReplicaSet and pod, scheduled by the scheduler, run by kwok
        uncordon()
    kubectl = subprocess.run(
        [
            str(find_binary("kubectl")),
            f"--kubeconfig={kubeconfig}",
            "-n",
            namespace,
            "wait",
            "--for=condition=Ready",
            f"djm/{name}",
            "--timeout=60s",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert kubectl.returncode == 0, kubectl.stderr
    status = api.model(namespace, name)["status"]
    assert status["phase"] == "Ready"
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Ready"]["reason"] == "Ready"
    assert by_type["WorkloadAvailable"]["status"] == "True"
    assert by_type["Ready"]["lastTransitionTime"] >= not_ready["lastTransitionTime"]
    # a condition whose status did not change keeps its transition time
    assert by_type["SpecValid"]["lastTransitionTime"] == spec_valid["lastTransitionTime"]
    # one Event a person acts on (the model serves), none for each condition's birth on the first pass
    # (the Events about the model itself: its same-named Deployment has the controller's too)
    events = [
        (e.type, e.reason) for e in api.events(namespace, name) if e.involved_object.kind == "DataJaxModel"
    ]
    assert events == [("Normal", "Ready")], events


def test_spec_the_planner_rejects_is_reported_without_a_workload(
    api: Api, namespace: str, operator: RunningOperator
) -> None:
    doc = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataJaxModel",
        "metadata": {"name": "too-big", "namespace": namespace},
        "spec": {
            "model": {"name": "org/huge", "parametersBillions": 70, "dtype": "bfloat16"},
            "tpu": {"generation": "v5e", "topology": "2x4"},
        },
    }
    api.create_model(doc)  # the API server accepts it: HBM fit is a planner check
    spec_valid = wait_for(lambda: api.condition(namespace, "too-big", "SpecValid"), what="SpecValid")
    assert spec_valid["status"] == "False"
    assert spec_valid["reason"] == "WeightsExceedHBM"
    assert "spec.model.parametersBillions" in spec_valid["message"]
    assert api.model(namespace, "too-big")["status"]["phase"] == "Invalid"
    assert api.deployment(namespace, "too-big") is None
    assert api.lws(namespace, "too-big") is None
    warnings = [e for e in api.events(namespace, "too-big") if e.type == "Warning"]
    assert any(e.reason == "WeightsExceedHBM" for e in warnings)


def test_an_invalid_edit_keeps_the_running_workload(
    api: Api, namespace: str, operator: RunningOperator
) -> None:
    doc = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataJaxModel",
        "metadata": {"name": "edited", "namespace": namespace},
        "spec": {"model": {"name": "org/m"}, "tpu": {"generation": "v5e", "topology": "2x4"}},
    }
    api.create_model(doc)
    before = wait_for(lambda: api.deployment(namespace, "edited"), what="the Deployment")
    # Accepted by the API server, refused by the planner: 70B bf16 weights do not fit 8 v5e chips.
    api.patch_spec(namespace, "edited", {"model": {"parametersBillions": 70, "dtype": "bfloat16"}})
    wait_for(
        lambda: (api.condition(namespace, "edited", "SpecValid") or {}).get("status") == "False",
        what="SpecValid=False",
    )
    after = api.deployment(namespace, "edited")
    assert after is not None, "an invalid edit deleted the serving workload"
    # untouched by the operator: the same object, spec and generation (its status moves on: the
    # Deployment controller reports the pod the scheduler placed and kwok runs)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]


def test_topology_change_replaces_the_workload_kind(
    api: Api, namespace: str, operator: RunningOperator
) -> None:
    doc = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataJaxModel",
        "metadata": {"name": "resize", "namespace": namespace},
        "spec": {"model": {"name": "org/m"}, "tpu": {"generation": "v6e", "topology": "2x4"}},
    }
    uid = api.create_model(doc)["metadata"]["uid"]
    first = wait_for(lambda: api.deployment(namespace, "resize"), what="the Deployment")
    assert api.lws(namespace, "resize") is None

    api.patch_spec(namespace, "resize", {"tpu": {"generation": "v6e", "topology": "4x4"}})
    lws = wait_for(lambda: api.lws(namespace, "resize"), what="the LeaderWorkerSet")
    wait_for(lambda: api.deployment(namespace, "resize") is None, what="the Deployment to be deleted")
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 4
    assert lws["metadata"]["ownerReferences"][0]["uid"] == uid
    wait_for(
        lambda: (
            (api.model(namespace, "resize")["status"].get("placement") or {}).get("workload")
            == "LeaderWorkerSet"
        ),
        what="status placement LeaderWorkerSet",
    )

    api.patch_spec(namespace, "resize", {"tpu": {"generation": "v6e", "topology": "2x4"}})
    second = wait_for(lambda: api.deployment(namespace, "resize"), what="the Deployment again")
    wait_for(lambda: api.lws(namespace, "resize") is None, what="the LeaderWorkerSet to be deleted")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    service = api.service(namespace, "resize")
    assert service is not None and service["metadata"]["ownerReferences"][0]["uid"] == uid


def test_children_of_a_deleted_model_are_all_owner_referenced(
    api: Api, namespace: str, operator: RunningOperator
) -> None:
    """Every child names the model as its owner, and the garbage collector (which runs here) removes
    them all once the model is gone; the operator deletes none of them itself."""
    doc = load_example(next(p for p in EXAMPLES if "multihost" in p.name), namespace)
    name = doc["metadata"]["name"]
    uid = api.create_model(doc)["metadata"]["uid"]
    wait_for(
        lambda: len(_dependents_of(api, namespace, uid)) == 3,
        what="the children",
    )
    assert sorted(_dependents_of(api, namespace, uid)) == sorted(
        [("ConfigMap", f"{name}-sidecar"), ("LeaderWorkerSet", name), ("Service", name)]
    )

    api.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    wait_for(lambda: not any(m["metadata"]["name"] == name for m in _models(api, namespace)), what="deletion")
    wait_for(lambda: _dependents_of(api, namespace, uid) == [], 60, "the garbage collector")
    assert api.lws(namespace, name) is None and api.service(namespace, name) is None


def _models(api: Api, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)[
        "items"
    ]
    return items


def _dependents_of(api: Api, ns: str, uid: str) -> list[tuple[str, str]]:
    """Every object in the namespace whose owner references name ``uid`` (what the GC would delete)."""
    found = []
    objects: list[tuple[str, Any]] = [
        (
            "Deployment",
            api.apps.api_client.sanitize_for_serialization(api.apps.list_namespaced_deployment(ns)),
        ),
        ("Service", api.core.api_client.sanitize_for_serialization(api.core.list_namespaced_service(ns))),
        (
            "ConfigMap",
            api.core.api_client.sanitize_for_serialization(api.core.list_namespaced_config_map(ns)),
        ),
        ("LeaderWorkerSet", api.custom.list_namespaced_custom_object(*LWS[:2], ns, LWS[2])),
    ]
    for kind, listing in objects:
        for item in listing["items"]:
            if any(ref["uid"] == uid for ref in item["metadata"].get("ownerReferences", [])):
                found.append((kind, item["metadata"]["name"]))
    return found


WAVE_SPEC = (
    Path(__file__).resolve().parents[1] / "unit" / "wavespec" / "chat-shared-system-prompt.wavespec.json"
)


def test_the_wave_spec_configmap_shapes_the_served_args(
    api: Api, namespace: str, operator: RunningOperator
) -> None:
    doc = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataJaxModel",
        "metadata": {"name": "tuned", "namespace": namespace},
        "spec": {
            "model": {"name": "org/m"},
            "tpu": {"generation": "v6e", "topology": "2x4"},
            "plan": {"waveSpecRef": {"name": "waves", "key": "wavespec.json"}},
        },
    }
    api.create_model(doc)  # before its ConfigMap exists: flagged, no workload
    missing = wait_for(lambda: api.condition(namespace, "tuned", "SpecValid"), what="SpecValid")
    assert missing["status"] == "False" and missing["reason"] == "WaveSpecUnusable"
    assert "spec.plan.waveSpecRef" in missing["message"] and "waves" in missing["message"]
    assert api.deployment(namespace, "tuned") is None

    text = WAVE_SPEC.read_text()
    api.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "waves"}, "data": {"wavespec.json": text}}
    )
    api.patch_spec(namespace, "tuned", {"replicas": 1})  # a spec event; the resync would also pick it up
    deployment = wait_for(lambda: api.deployment(namespace, "tuned"), what="the Deployment")
    vllm = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm")
    model = DataJaxModel.model_validate(doc)
    expected = make_plan(model, OperatorConfig(), json.loads(text)).vllm_args
    without = make_plan(model, OperatorConfig()).vllm_args
    assert expected != without, "the fixture must change some serving default"
    served = " ".join(vllm.get("command", []) + vllm.get("args", []))
    for arg in expected:
        assert arg in served, f"{arg} (derived from the wave spec) not in the served command"
