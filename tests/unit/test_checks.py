"""Every pre-flight check: each bad spec is rejected naming its field, good neighbours pass."""

from typing import Any

import pytest
from djm_fixtures import model_with

from datajax_operator.api.rules import RULES
from datajax_operator.plan import OperatorConfig, PlanError, make_plan

CONFIG = OperatorConfig()
SIZED: dict[str, Any] = {"model": {"name": "m", "parametersBillions": 8, "dtype": "bfloat16"}}
SLO = {"p95LatencySeconds": 2}

# (name, spec sections, field the problem must name)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("topology-legal", {"tpu": {"generation": "v5e", "topology": "2x2x2"}}, "spec.tpu.topology"),
    ("topology-legal-3d", {"tpu": {"generation": "v5p", "topology": "4x4"}}, "spec.tpu.topology"),
    (
        "machine-type-legal",
        {"tpu": {"generation": "v6e", "topology": "4x4", "machineType": "ct6e-standard-8t"}},
        "spec.tpu.machineType",
    ),
    (
        "machine-type-of-other-generation",
        {"tpu": {"generation": "v6e", "topology": "2x4", "machineType": "ct5lp-hightpu-8t"}},
        "spec.tpu.machineType",
    ),
    (
        "spot-without-reservation",
        {"tpu": {"generation": "v6e", "topology": "2x4", "spot": True, "reservation": "r"}},
        "spec.tpu.reservation",
    ),
    (
        "kv-heads-divide-heads",
        {"model": {"name": "m", "attentionHeads": 40, "kvHeads": 16}},
        "spec.model.kvHeads",
    ),
    ("mesh-axes-match-shape", {"mesh": {"axes": ["data", "model"], "shape": [8]}}, "spec.mesh.shape"),
    ("mesh-product-is-stage-devices", {"mesh": {"shape": [2, 8]}}, "spec.mesh.shape"),
    (
        "mesh-product-is-one-stage-on-multihost",
        {"tpu": {"generation": "v6e", "topology": "4x4"}, "mesh": {"shape": [1, 16]}},
        "spec.mesh.shape",
    ),
    (
        "mesh-product-counts-tpu7x-devices",
        {
            "tpu": {"generation": "tpu7x", "topology": "2x2x1"},
            "mesh": {"shape": [1, 4]},
            "cost": {"usdPerChipHour": 5.0},
        },
        "spec.mesh.shape",
    ),
    (
        "one-weight-storage",
        {"model": {"name": "m", "storage": {"emptyDir": {}, "persistentVolumeClaim": {"claimName": "w"}}}},
        "spec.model.storage",
    ),
    (
        "one-cache-volume",
        {"serving": {"xlaCache": {"claimName": "c", "gcsFuse": {"bucketName": "my-bucket"}}}},
        "spec.serving.xlaCache",
    ),
    ("extra-args-pipeline-short", {"serving": {"extraArgs": ["-pp", "2"]}}, "spec.serving.extraArgs"),
    (
        "extra-args-pipeline-long",
        {"serving": {"extraArgs": ["--pipeline-parallel-size=2"]}},
        "spec.serving.extraArgs",
    ),
    (
        "extra-args-download-dir",
        {"serving": {"extraArgs": ["--download-dir=/tmp"]}},
        "spec.serving.extraArgs",
    ),
    ("mesh-product-single-axis", {"mesh": {"axes": ["model"], "shape": [4]}}, "spec.mesh.shape"),
    ("spot-pricing-matches-nodes", {"cost": {"pricing": "spot"}}, "spec.cost.pricing"),
    (
        "on-demand-pricing-on-spot",
        {"tpu": {"generation": "v6e", "topology": "2x4", "spot": True}, "cost": {"pricing": "on-demand"}},
        "spec.cost.pricing",
    ),
    ("extra-args-not-managed", {"serving": {"extraArgs": ["--max-model-len=10"]}}, "spec.serving.extraArgs"),
    (
        "extra-args-bare-flag",
        {"serving": {"extraArgs": ["--enable-prefix-caching"]}},
        "spec.serving.extraArgs",
    ),
    ("env-not-reserved", {"serving": {"env": [{"name": "HF_TOKEN", "value": "hf_x"}]}}, "spec.serving.env"),
    (
        "env-single-source",
        {"serving": {"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}},
        "spec.serving.env",
    ),
    (
        "env-value-from-one-source",
        {
            "serving": {
                "env": [
                    {
                        "name": "A",
                        "valueFrom": {
                            "fieldRef": {"fieldPath": "metadata.name"},
                            "secretKeyRef": {"name": "s", "key": "k"},
                        },
                    }
                ]
            }
        },
        "spec.serving.env",
    ),
    ("env-value-from-no-source", {"serving": {"env": [{"name": "A", "valueFrom": {}}]}}, "spec.serving.env"),
    (
        "batch-holds-seqs",
        {"serving": {"maxNumSeqs": 512, "chunkedPrefill": {"maxNumBatchedTokens": 256}}},
        "spec.serving.chunkedPrefill.maxNumBatchedTokens",
    ),
    ("tp-divides-heads", {"model": {"name": "m", "attentionHeads": 12}}, "spec.model.attentionHeads"),
    ("tp-and-kv-heads", {"model": {"name": "m", "kvHeads": 3}}, "spec.model.kvHeads"),
    (
        "weights-fit-hbm",
        {
            "model": {"name": "m", "parametersBillions": 70, "dtype": "bfloat16"},
            "tpu": {"generation": "v5e", "topology": "2x4"},
        },
        "spec.model.parametersBillions",
    ),
    (
        "weights-fit-per-dp-engine",
        {
            "model": {"name": "m", "parametersBillions": 20, "dtype": "bfloat16"},
            "tpu": {"generation": "v5e", "topology": "2x2"},
            "mesh": {"shape": [4, 1]},
        },
        "spec.model.parametersBillions",
    ),
    ("price-known", {"tpu": {"generation": "tpu7x", "topology": "2x2x1"}}, "spec.cost.usdPerChipHour"),
    (
        "scaling-min-at-most-max",
        {**SIZED, "slo": SLO, "scaling": {"minReplicas": 5, "maxReplicas": 4}},
        "spec.scaling.minReplicas",
    ),
    (
        "scaling-zero-needs-delay",
        {**SIZED, "slo": SLO, "scaling": {"minReplicas": 0, "maxReplicas": 4}},
        "spec.scaling.minReplicas",
    ),
    ("scaling-needs-slo", {**SIZED, "scaling": {"maxReplicas": 4}}, "spec.scaling"),
    (
        "scaling-needs-model-size",
        {"slo": SLO, "scaling": {"maxReplicas": 4}},
        "spec.model.parametersBillions",
    ),
    (
        "compile-gate-needs-shapes",
        {**SIZED, "model": {"name": "m", "attentionHeads": 32, "kvHeads": 8}, "plan": {"compileGate": True}},
        "spec.plan.compileGate",
    ),
    (
        "scaling-owns-replicas",
        {**SIZED, "slo": SLO, "scaling": {"maxReplicas": 4}, "cost": {"action": "ScaleDown"}},
        "spec.cost.action",
    ),
]


@pytest.mark.parametrize(("name", "changes", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_spec_names_its_field(name: str, changes: dict[str, Any], field: str) -> None:
    with pytest.raises(PlanError) as err:
        make_plan(model_with(**changes), CONFIG)
    fields = [p.field for p in err.value.problems]
    assert fields == [field], err.value.problems
    assert all(p.message for p in err.value.problems)


def test_every_rule_has_a_failing_case_here() -> None:
    tested = {name for name, _, _ in BAD}
    assert {r.name for r in RULES} <= tested


GOOD: list[tuple[str, dict[str, Any]]] = [
    ("kv-heads-fewer-than-tp-are-replicated", {"model": {"name": "m", "attentionHeads": 64, "kvHeads": 2}}),
    ("explicit-mesh-any-order", {"mesh": {"axes": ["model", "data"], "shape": [4, 2]}}),
    ("single-axis-mesh", {"mesh": {"axes": ["model"], "shape": [8]}}),
    (
        "8b-fits-v5e-2x2",
        {
            "model": {"name": "m", "parametersBillions": 8, "dtype": "bfloat16"},
            "tpu": {"generation": "v5e", "topology": "2x2"},
        },
    ),
    ("70b-fits-v6e-2x4", {"model": {"name": "m", "parametersBillions": 70, "dtype": "bfloat16"}}),
    (
        "70b-int8-fits-v5e-2x4",
        {
            "model": {"name": "m", "parametersBillions": 70, "dtype": "int8"},
            "tpu": {"generation": "v5e", "topology": "2x4"},
        },
    ),
    ("size-without-dtype-is-not-judged", {"model": {"name": "m", "parametersBillions": 700}}),
    (
        "spot-pricing-on-spot",
        {"tpu": {"generation": "v6e", "topology": "2x4", "spot": True}, "cost": {"pricing": "spot"}},
    ),
    ("reservation-on-demand", {"tpu": {"generation": "v6e", "topology": "2x4", "reservation": "my-res"}}),
    (
        "2x4-on-two-hosts",
        {"tpu": {"generation": "v6e", "topology": "2x4", "machineType": "ct6e-standard-4t"}},
    ),
    (
        "unrelated-extra-args",
        {"serving": {"extraArgs": ["--model-impl=auto", "--kv-cache-dtype-skip-layers=0"]}},
    ),
    (
        "scale-to-zero-when-asked",
        {**SIZED, "slo": SLO, "scaling": {"minReplicas": 0, "maxReplicas": 4, "scaleToZeroAfter": "30m"}},
    ),
    (
        "tpu7x-mesh-of-devices",
        {
            "tpu": {"generation": "tpu7x", "topology": "2x2x1"},
            "mesh": {"shape": [2, 4]},
            "cost": {"usdPerChipHour": 5.0},
        },
    ),
    ("pipeline-stage-mesh", {"tpu": {"generation": "v6e", "topology": "4x4"}, "mesh": {"shape": [2, 2]}}),
    (
        "tensor-across-hosts-mesh",
        {
            "tpu": {"generation": "v6e", "topology": "4x4", "parallelism": "TensorAcrossHosts"},
            "mesh": {"shape": [1, 16]},
        },
    ),
    (
        "2x4-on-two-hosts-one-stage-each",
        {
            "tpu": {"generation": "v6e", "topology": "2x4", "machineType": "ct6e-standard-4t"},
            "mesh": {"shape": [1, 4]},
        },
    ),
    ("pvc-storage", {"model": {"name": "m", "storage": {"persistentVolumeClaim": {"claimName": "w"}}}}),
    ("gcs-cache", {"serving": {"xlaCache": {"gcsFuse": {"bucketName": "my-bucket", "onlyDir": "xla"}}}}),
    (
        "env-from-each-source",
        {
            "serving": {
                "env": [
                    {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {
                        "name": "B",
                        "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
                    },
                    {
                        "name": "C",
                        "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": 1}},
                    },
                    {
                        "name": "D",
                        "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": True}},
                    },
                    {"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                ]
            }
        },
    ),
]


@pytest.mark.parametrize(("name", "changes"), GOOD, ids=[g[0] for g in GOOD])
def test_good_neighbours_pass(name: str, changes: dict[str, Any]) -> None:
    """Planned (a problem would raise PlanError) as the spec asks: its slice, a mesh over all of it,
    the user's extra arguments passed on, nothing stopping it."""
    model = model_with(**changes)
    plan = make_plan(model, CONFIG)
    tpu = model.spec.tpu
    assert (plan.placement.generation, plan.placement.topology) == (tpu.generation, tpu.topology)
    m = plan.mesh
    assert m.tensor_parallel * m.data_parallel * m.pipeline_parallel == plan.placement.devices
    assert all(arg in plan.vllm_args for arg in model.spec.serving.extra_args)
    assert all(w.severity == "warning" for w in plan.warnings), plan.warnings


def test_mesh_is_normalised_to_data_model_order() -> None:
    plan = make_plan(model_with(mesh={"axes": ["model", "data"], "shape": [4, 2]}), CONFIG)
    assert (plan.mesh.tensor_parallel, plan.mesh.data_parallel) == (4, 2)
    # Each data-parallel engine is its own process over its own tp devices (tpu-inference
    # _resolve_multiprocess_dp): the mesh a process builds is (1, tp), never (dp, tp).
    assert (plan.mesh.axes, plan.mesh.shape) == (("data", "model"), (1, 4))


def test_default_mesh_is_tensor_parallel_over_a_single_host_slice() -> None:
    plan = make_plan(model_with(tpu={"generation": "v6e", "topology": "2x4"}), CONFIG)
    assert (plan.mesh.tensor_parallel, plan.mesh.pipeline_parallel) == (8, 1)
    assert "--tensor-parallel-size=8" in plan.vllm_args
    assert not any(a.startswith("--pipeline-parallel-size") for a in plan.vllm_args)


def test_every_problem_is_collected_not_just_the_first() -> None:
    bad = model_with(
        model={"name": "m", "attentionHeads": 40, "kvHeads": 6, "parametersBillions": 70, "dtype": "float32"},
        tpu={"generation": "v5e", "topology": "2x4", "spot": True, "reservation": "r"},
        cost={"pricing": "cud-1y"},
        serving={"extraArgs": ["-tp=2"], "env": [{"name": "VLLM_XLA_CACHE_PATH", "value": "/x"}]},
    )
    with pytest.raises(PlanError) as err:
        make_plan(bad, CONFIG)
    fields = {p.field for p in err.value.problems}
    assert fields == {
        "spec.tpu.reservation",
        "spec.model.kvHeads",
        "spec.cost.pricing",
        "spec.serving.extraArgs",
        "spec.serving.env",
        "spec.model.parametersBillions",
        "spec.cost.usdPerChipHour",
    }


def test_mesh_problem_suppresses_checks_that_would_repeat_it() -> None:
    with pytest.raises(PlanError) as err:
        make_plan(model_with(mesh={"shape": [3, 3]}, model={"name": "m", "attentionHeads": 32}), CONFIG)
    assert [p.field for p in err.value.problems] == ["spec.mesh.shape"]
