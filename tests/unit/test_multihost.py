"""Issue 15 items 1, 2, 5, 6 and 7: what every pod of a multi-host slice gets, TPU7x device counts,
the 2x4 machine-type selector, the multi-host parallelism choice and the data-parallel report.

Each test fails on the renderer and planner as they were before issue 15.
"""

from typing import Any

import pytest
from djm_fixtures import EXAMPLES, load_example, model_with

from datajax_operator.api import DataJaxModel
from datajax_operator.plan import OperatorConfig, PlanError, make_plan
from datajax_operator.plan.catalog import GIB
from datajax_operator.render.objects import render_objects
from datajax_operator.render.pod import INSTANCE_TYPE_LABEL, PLAN_BUNDLE

CONFIG = OperatorConfig()
BUNDLE = {"configMapRef": {"name": "plan-v1"}}


def _templates(model: DataJaxModel) -> dict[str, dict[str, Any]]:
    """Pod templates by role of the model's rendered workload."""
    plan = make_plan(model, CONFIG)
    (workload,) = [
        o for o in render_objects(model, plan, CONFIG) if o["kind"] != "ConfigMap" and o["kind"] != "Service"
    ]
    if workload["kind"] == "Deployment":
        return {"leader": workload["spec"]["template"]}
    lws = workload["spec"]["leaderWorkerTemplate"]
    return {"leader": lws["leaderTemplate"], "worker": lws["workerTemplate"]}


def _vllm(template: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in template["spec"]["containers"] if c["name"] == "vllm"]
    return container


def _env(template: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in _vllm(template)["env"]}


def test_every_pod_of_a_multihost_slice_mounts_the_bundle_it_is_pointed_at() -> None:
    """vLLM runs the plugin in the Ray workers on the worker hosts too; they must find the file."""
    templates = _templates(model_with(tpu={"generation": "v6e", "topology": "4x4"}, plan=BUNDLE))
    assert set(templates) == {"leader", "worker"}
    for role, template in templates.items():
        assert _env(template)["DATAJAX_PLAN_BUNDLE"] == PLAN_BUNDLE, role
        mounts = {m["name"]: m["mountPath"] for m in _vllm(template)["volumeMounts"]}
        assert PLAN_BUNDLE.startswith(mounts["datajax-plan"] + "/"), role
        (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "datajax-plan"]
        assert volume["projected"]["sources"][0]["configMap"]["name"] == "plan-v1"
    # The plan status is for the sidecar, which only the leader has.
    assert "DATAJAX_PLAN_STATUS" in _env(templates["leader"])
    assert "DATAJAX_PLAN_STATUS" not in _env(templates["worker"])


def test_tpu7x_counts_two_devices_per_chip() -> None:
    """A 2x2x2 TPU7x slice is 8 chips and 16 JAX devices: tpu-inference's own GKE manifest serves it with
    --tensor-parallel-size 16 (examples/offload/gke/benchmarks/multi-host/deploy-baseline.yaml)."""
    model = model_with(
        tpu={"generation": "tpu7x", "topology": "2x2x2", "parallelism": "TensorAcrossHosts"},
        cost={"usdPerChipHour": 5.0},
    )
    plan = make_plan(model, CONFIG)
    assert (plan.placement.chips, plan.placement.devices, plan.placement.hosts) == (8, 16, 2)
    assert "--tensor-parallel-size=16" in plan.vllm_args
    assert plan.placement.hbm_bytes_per_device == 96 * GIB
    single = make_plan(
        model_with(tpu={"generation": "tpu7x", "topology": "2x2x1"}, cost={"usdPerChipHour": 5.0}), CONFIG
    )
    assert "--tensor-parallel-size=8" in single.vllm_args
    # google.com/tpu counts chips, not devices.
    assert _vllm(_templates(model)["leader"])["resources"]["limits"]["google.com/tpu"] == "4"


def test_tpu7x_hbm_check_counts_per_device_hbm() -> None:
    """405B bf16 (810 GB) needs more than 8 devices x 96 GiB x 0.8; the old per-chip count let it through."""
    model = model_with(
        model={"name": "m", "parametersBillions": 405, "dtype": "bfloat16"},
        tpu={"generation": "tpu7x", "topology": "2x2x1"},
        mesh={"shape": [2, 4]},
        cost={"usdPerChipHour": 5.0},
    )
    with pytest.raises(PlanError, match="devices leave"):
        make_plan(model, CONFIG)


@pytest.mark.parametrize(
    ("tpu", "roles", "machine"),
    [
        ({"generation": "v6e", "topology": "2x4"}, {"leader"}, "ct6e-standard-8t"),
        (
            {"generation": "v6e", "topology": "2x4", "machineType": "ct6e-standard-4t"},
            {"leader", "worker"},
            "ct6e-standard-4t",
        ),
        ({"generation": "v5e", "topology": "2x4"}, {"leader"}, "ct5lp-hightpu-8t"),
        (
            {"generation": "v5e", "topology": "2x4", "machineType": "ct5lp-hightpu-4t"},
            {"leader", "worker"},
            "ct5lp-hightpu-4t",
        ),
    ],
)
def test_ambiguous_2x4_selects_the_machine_type(tpu: dict[str, Any], roles: set[str], machine: str) -> None:
    """Both 2x4 shapes carry gke-tpu-topology=2x4; only the instance type tells the pools apart."""
    templates = _templates(model_with(tpu=tpu))
    assert set(templates) == roles
    for template in templates.values():
        assert template["spec"]["nodeSelector"][INSTANCE_TYPE_LABEL] == machine


def test_unambiguous_topologies_do_not_pin_the_machine_type() -> None:
    for template in _templates(model_with(tpu={"generation": "v6e", "topology": "4x4"})).values():
        assert INSTANCE_TYPE_LABEL not in template["spec"]["nodeSelector"]


def test_multihost_default_is_one_pipeline_stage_per_host() -> None:
    """tpu-inference marks multi-host PP passing and multi-host TP untested (support_matrices/)."""
    plan = make_plan(model_with(tpu={"generation": "v6e", "topology": "4x4"}), CONFIG)
    assert (plan.mesh.tensor_parallel, plan.mesh.pipeline_parallel, plan.mesh.data_parallel) == (4, 4, 1)
    assert {"--tensor-parallel-size=4", "--pipeline-parallel-size=4"} <= set(plan.vllm_args)
    assert "--distributed-executor-backend=ray" in plan.vllm_args


def test_tensor_across_hosts_is_a_choice() -> None:
    model = model_with(tpu={"generation": "v6e", "topology": "4x4", "parallelism": "TensorAcrossHosts"})
    plan = make_plan(model, CONFIG)
    assert (plan.mesh.tensor_parallel, plan.mesh.pipeline_parallel) == (16, 1)
    assert not any(a.startswith("--pipeline-parallel-size") for a in plan.vllm_args)


def test_a_single_host_slice_has_no_pipeline_stages_whatever_the_choice() -> None:
    plan = make_plan(
        model_with(tpu={"generation": "v6e", "topology": "2x4", "parallelism": "PipelineAcrossHosts"}), CONFIG
    )
    assert (plan.mesh.tensor_parallel, plan.mesh.pipeline_parallel) == (8, 1)


def test_tensor_parallel_must_divide_heads_within_a_stage() -> None:
    """v6e 4x4 under pipeline parallelism is tp 4 per stage: 12 heads are fine there, though not at tp 16."""
    make_plan(
        model_with(model={"name": "m", "attentionHeads": 12}, tpu={"generation": "v6e", "topology": "4x4"}),
        CONFIG,
    )
    with pytest.raises(PlanError, match="tensor parallel 16 does not divide 12"):
        make_plan(
            model_with(
                model={"name": "m", "attentionHeads": 12},
                tpu={"generation": "v6e", "topology": "4x4", "parallelism": "TensorAcrossHosts"},
            ),
            CONFIG,
        )


def test_data_parallel_reports_the_mesh_each_engine_process_builds() -> None:
    """With dp 2 vLLM runs two engine processes, each building a (1, tp) mesh; none builds (2, tp)."""
    (qwen,) = [p for p in EXAMPLES if p.name == "qwen2.5-1.5b-v5e.yaml"]
    mesh = make_plan(load_example(qwen), CONFIG).mesh.to_json()
    assert mesh["shape"] == [1, 2]
    assert (mesh["dataParallel"], mesh["tensorParallel"], mesh["engines"]) == (2, 2, 1 * 2)
    assert "2 engine(s)" in str(mesh["structure"]) and "(1, 2)" in str(mesh["structure"])


def test_seventy_b_example_is_single_host_v6e_2x4() -> None:
    (example,) = [p for p in EXAMPLES if p.name == "llama3-70b-v6e.yaml"]
    plan = make_plan(load_example(example), CONFIG)
    assert (plan.placement.topology, plan.placement.hosts, plan.placement.workload) == (
        "2x4",
        1,
        "Deployment",
    )
    assert plan.mesh.tensor_parallel == 8
