"""The API server itself refuses bad DataJaxModels (OpenAPI schema and CEL), naming the field.

No operator runs here: these objects never reach it. Each case is a spec change on a valid model,
with the field path the server's message must name.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubehelpers import GROUP, PLURAL, VERSION
from kubernetes import client

pytestmark = pytest.mark.integration

VALID: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "DataJaxModel",
    "metadata": {"name": "bad"},
    "spec": {"model": {"name": "org/model"}, "tpu": {"generation": "v6e", "topology": "2x4"}},
}

_SCALABLE: dict[str, Any] = {
    "model": {"parametersBillions": 8, "dtype": "bfloat16"},
    "slo": {"p95LatencySeconds": 2},
}

# (case id, spec patch (deep-merged into VALID's spec), field the message must name)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("model-name-missing", {"model": {"name": None}}, "spec.model.name"),
    ("generation-unknown", {"tpu": {"generation": "v4"}}, "spec.tpu.generation"),
    ("topology-not-a-shape", {"tpu": {"topology": "3x3"}}, "spec.tpu.topology"),
    (
        "topology-of-other-generation",
        {"tpu": {"generation": "v5e", "topology": "2x2x2"}},
        "spec.tpu.topology",
    ),
    (
        "machine-type-wrong",
        {"tpu": {"topology": "4x4", "machineType": "ct6e-standard-8t"}},
        "spec.tpu.machineType",
    ),
    ("spot-with-reservation", {"tpu": {"spot": True, "reservation": "r"}}, "spec.tpu.reservation"),
    ("replicas-negative", {"replicas": -1}, "spec.replicas"),
    ("max-model-len-zero", {"model": {"maxModelLen": 0}}, "spec.model.maxModelLen"),
    ("kv-heads-do-not-divide", {"model": {"attentionHeads": 40, "kvHeads": 16}}, "spec.model.kvHeads"),
    ("mesh-axes-vs-shape", {"mesh": {"axes": ["data", "model"], "shape": [8]}}, "spec.mesh.shape"),
    ("mesh-product-not-chips", {"mesh": {"axes": ["data", "model"], "shape": [2, 8]}}, "spec.mesh.shape"),
    ("spot-pricing-on-demand-nodes", {"cost": {"pricing": "spot"}}, "spec.cost.pricing"),
    (
        "ceiling-negative",
        {"cost": {"ceilingUSDPerMillionTokens": -1}},
        "spec.cost.ceilingUSDPerMillionTokens",
    ),
    ("cost-action-unknown", {"cost": {"action": "Panic"}}, "spec.cost.action"),
    ("cost-basis-unknown", {"cost": {"basis": "input"}}, "spec.cost.basis"),
    ("kv-cache-dtype-unknown", {"serving": {"kvCacheDtype": "int3"}}, "spec.serving.kvCacheDtype"),
    ("extra-args-managed-flag", {"serving": {"extraArgs": ["--max-model-len=10"]}}, "spec.serving.extraArgs"),
    ("env-reserved", {"serving": {"env": [{"name": "HF_TOKEN", "value": "x"}]}}, "spec.serving.env"),
    (
        "env-value-and-value-from",
        {"serving": {"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}},
        "spec.serving.env",
    ),
    # serving.env[].valueFrom has core/v1 EnvVarSource's schema: refused here, not when the Deployment is
    (
        "env-value-from-unknown-source",
        {"serving": {"env": [{"name": "A", "valueFrom": {"foo": "bar"}}]}},
        "spec.serving.env[0].valueFrom.foo",
    ),
    (
        "env-value-from-secret-without-key",
        {"serving": {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]}},
        "spec.serving.env[0].valueFrom.secretKeyRef.key",
    ),
    (
        "env-value-from-field-path-not-a-string",
        {"serving": {"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": 3}}}]}},
        "spec.serving.env[0].valueFrom.fieldRef.fieldPath",
    ),
    (
        "env-value-from-two-sources",
        {
            "serving": {
                "env": [
                    {
                        "name": "A",
                        "valueFrom": {
                            "fieldRef": {"fieldPath": "metadata.name"},
                            "configMapKeyRef": {"name": "cm", "key": "k"},
                        },
                    }
                ]
            }
        },
        "spec.serving.env",
    ),
    ("env-value-from-empty", {"serving": {"env": [{"name": "A", "valueFrom": {}}]}}, "spec.serving.env"),
    (
        "batch-smaller-than-seqs",
        {"serving": {"maxNumSeqs": 512, "chunkedPrefill": {"maxNumBatchedTokens": 256}}},
        "spec.serving.chunkedPrefill.maxNumBatchedTokens",
    ),
    ("unknown-field", {"tpu": {"topolgy": "2x4"}}, "spec.tpu.topolgy"),
    (
        "scaling-min-above-max",
        {**_SCALABLE, "scaling": {"minReplicas": 3, "maxReplicas": 2}},
        "spec.scaling.minReplicas",
    ),
    (
        "scaling-zero-without-delay",
        {**_SCALABLE, "scaling": {"minReplicas": 0, "maxReplicas": 2}},
        "spec.scaling.minReplicas",
    ),
    ("scaling-without-slo", {"model": _SCALABLE["model"], "scaling": {"maxReplicas": 2}}, "spec.scaling"),
    (
        "scaling-without-model-size",
        {"slo": _SCALABLE["slo"], "scaling": {"maxReplicas": 2}},
        "spec.model.parametersBillions",
    ),
    (
        "scaling-with-cost-action",
        {**_SCALABLE, "scaling": {"maxReplicas": 2}, "cost": {"action": "Suspend"}},
        "spec.cost.action",
    ),
    (
        "scaling-policy-unknown",
        {**_SCALABLE, "scaling": {"maxReplicas": 2, "policy": "Cheap"}},
        "spec.scaling.policy",
    ),
    # Issue 15: meshes count JAX devices of one pipeline stage; one storage; the pipeline flag is ours.
    (
        "mesh-spans-hosts-under-pipeline-parallelism",
        {"tpu": {"topology": "4x4"}, "mesh": {"shape": [1, 16]}},
        "spec.mesh.shape",
    ),
    (
        "mesh-counts-chips-not-tpu7x-devices",
        {"tpu": {"generation": "tpu7x", "topology": "2x2x1"}, "mesh": {"shape": [1, 4]}},
        "spec.mesh.shape",
    ),
    ("parallelism-unknown", {"tpu": {"parallelism": "ExpertAcrossHosts"}}, "spec.tpu.parallelism"),
    (
        "two-weight-storages",
        {"model": {"storage": {"emptyDir": {}, "persistentVolumeClaim": {"claimName": "w"}}}},
        "spec.model.storage",
    ),
    ("extra-args-pipeline", {"serving": {"extraArgs": ["-pp", "2"]}}, "spec.serving.extraArgs"),
    (
        "cache-claim-and-bucket",
        {"serving": {"xlaCache": {"claimName": "c", "gcsFuse": {"bucketName": "my-bucket"}}}},
        "spec.serving.xlaCache",
    ),
    (
        "compile-gate-without-shapes",
        {"model": {"attentionHeads": 32, "kvHeads": 8}, "plan": {"compileGate": True}},
        "spec.plan.compileGate",
    ),
]

GOOD: list[tuple[str, dict[str, Any]]] = [
    (
        "tensor-across-hosts",
        {"tpu": {"topology": "4x4", "parallelism": "TensorAcrossHosts"}, "mesh": {"shape": [1, 16]}},
    ),
    ("pipeline-stage-mesh", {"tpu": {"topology": "4x4"}, "mesh": {"shape": [2, 2]}}),
    ("tpu7x-devices", {"tpu": {"generation": "tpu7x", "topology": "2x2x1"}, "mesh": {"shape": [2, 4]}}),
    ("two-host-2x4-stage", {"tpu": {"machineType": "ct6e-standard-4t"}, "mesh": {"shape": [1, 4]}}),
    ("gcs-weights", {"model": {"storage": {"gcsFuse": {"bucketName": "my-bucket", "onlyDir": "m"}}}}),
    (
        "compile-gate-with-shapes",
        {
            "model": {
                "attentionHeads": 32,
                "kvHeads": 8,
                "numLayers": 32,
                "headDim": 128,
                "parametersBillions": 8,
            },
            "plan": {"compileGate": True},
        },
    ),
]


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("patch", [p for _, p in GOOD], ids=[c for c, _ in GOOD])
def test_api_server_accepts(patch: dict[str, Any], admin_client: Any, namespace: str) -> None:
    api = client.CustomObjectsApi(admin_client)
    doc = _merge(
        VALID, {"metadata": {"name": "good-" + str(abs(hash(json.dumps(patch, sort_keys=True))))[:8]}}
    )
    doc["spec"] = _merge(doc["spec"], patch)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc, field_validation="Strict")


def test_cases_are_distinct() -> None:
    assert len(BAD) >= 15
    assert len({json.dumps(p, sort_keys=True) for _, p, _ in BAD}) == len(BAD)


def test_the_valid_base_is_accepted(admin_client: Any, namespace: str) -> None:
    api = client.CustomObjectsApi(admin_client)
    doc = _merge(VALID, {"metadata": {"name": "good"}})
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc, field_validation="Strict")


@pytest.mark.parametrize(("patch", "field"), [(p, f) for _, p, f in BAD], ids=[c for c, _, _ in BAD])
def test_api_server_refuses(patch: dict[str, Any], field: str, admin_client: Any, namespace: str) -> None:
    api = client.CustomObjectsApi(admin_client)
    doc = copy.deepcopy(VALID)
    doc["spec"] = _merge(doc["spec"], patch)
    with pytest.raises(client.ApiException) as refused:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc, field_validation="Strict")
    assert refused.value.status in (400, 422), refused.value.body
    assert field in json.loads(refused.value.body)["message"]


def test_an_unknown_value_from_is_refused_without_strict_validation_too(
    admin_client: Any, namespace: str
) -> None:
    """A client that does not ask for strict field validation gets the unknown source pruned, and the
    now empty valueFrom refused by the exactly-one-source rule, rather than a model the operator would
    render into a pod without that variable."""
    api = client.CustomObjectsApi(admin_client)
    doc = copy.deepcopy(VALID)
    doc["spec"] = _merge(doc["spec"], {"serving": {"env": [{"name": "A", "valueFrom": {"foo": "bar"}}]}})
    with pytest.raises(client.ApiException) as refused:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc, field_validation="Ignore")
    assert refused.value.status == 422, refused.value.body
    message = json.loads(refused.value.body)["message"]
    assert "spec.serving.env" in message and "exactly one of fieldRef" in message, message


def test_every_value_from_source_is_accepted(admin_client: Any, namespace: str) -> None:
    api = client.CustomObjectsApi(admin_client)
    env = [
        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "D", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": 1}}},
        {"name": "E", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": True}}},
        {"name": "F", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    doc = _merge(VALID, {"metadata": {"name": "env-sources"}, "spec": {"serving": {"env": env}}})
    created = api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, doc, field_validation="Strict"
    )
    assert created["spec"]["serving"]["env"] == env
