"""Property tests: any accepted spec renders valid objects; any rejected one names a field."""

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from datajax_operator.api import DataJaxModel
from datajax_operator.api.errors import validation_problems
from datajax_operator.api.tpu import SLICE_SHAPES
from datajax_operator.plan import OperatorConfig, PlanError, make_plan
from datajax_operator.render import render_objects

CONFIG = OperatorConfig()
DNS_1123 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
FIELD = re.compile(r"^spec(\.[A-Za-z0-9]+|\[\d+\])+$|^(metadata|apiVersion|kind)(\.[A-Za-z0-9]+|\[\d+\])*$")

GENERATIONS = ["v5e", "v6e", "v5p", "tpu7x"]
TOPOLOGIES = sorted({t for s in SLICE_SHAPES.values() for t in s})


def _pick(draw: st.DrawFn, wide: bool, valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> Any:
    """A value from the valid range, or, in a wide document, from beyond it too."""
    return draw(valid | invalid) if wide else draw(valid)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Documents whose fields stay in range (mostly accepted) or stray beyond every limit (wide)."""
    wide = draw(st.booleans())
    pick = lambda valid, invalid: _pick(draw, wide, valid, invalid)  # noqa: E731
    generation = pick(st.sampled_from(GENERATIONS), st.just("v4"))
    shapes = sorted(SLICE_SHAPES.get(generation, {"2x2": ()}))
    spec: dict[str, Any] = {
        "model": {"name": pick(st.sampled_from(["org/m", "gs://b/w"]), st.just(""))},
        "tpu": {
            "generation": generation,
            "topology": pick(st.sampled_from(shapes), st.sampled_from([*TOPOLOGIES, "3x3", "x"])),
        },
    }
    optional = {
        ("model", "attentionHeads"): (st.sampled_from([8, 12, 32, 40, 64, 128]), st.integers(-1, 0)),
        ("model", "kvHeads"): (st.sampled_from([1, 2, 4, 8]), st.integers(-1, 0)),
        ("model", "parametersBillions"): (st.floats(0.5, 500), st.floats(-1, 0)),
        ("model", "dtype"): (st.sampled_from(["bfloat16", "int4", "fp8", "float32"]), st.just("double")),
        ("model", "maxModelLen"): (st.integers(16, 200_000), st.integers(-1, 15)),
        ("tpu", "spot"): (st.booleans(), st.just("yes please")),
        ("tpu", "reservation"): (st.just("res-a"), st.just("Bad_Name")),
        ("tpu", "machineType"): (
            st.sampled_from(["ct6e-standard-4t", "ct5lp-hightpu-4t"]),
            st.just("n2-std"),
        ),
        ("", "replicas"): (st.integers(0, 5), st.integers(-2, -1)),
    }
    for (section, key), (valid, invalid) in optional.items():
        if draw(st.booleans()):
            (spec[section] if section else spec)[key] = pick(valid, invalid)
    if draw(st.booleans()):
        spec["mesh"] = {
            "shape": pick(
                st.lists(st.integers(1, 64), min_size=1, max_size=2), st.lists(st.integers(0, 64), max_size=3)
            )
        }
        if draw(st.booleans()):
            spec["mesh"]["axes"] = pick(
                st.sampled_from([["data", "model"], ["model"], ["model", "data"]]), st.just(["seq"])
            )
    if draw(st.booleans()):
        spec["serving"] = {
            "maxNumSeqs": pick(st.integers(1, 2048), st.integers(-1, 0)),
            "chunkedPrefill": {"maxNumBatchedTokens": pick(st.integers(2048, 8192), st.integers(0, 2047))},
            "extraArgs": draw(st.lists(st.sampled_from(["--seed=4", "--port=1", "-tp"]), max_size=2)),
            "env": draw(
                st.lists(
                    st.sampled_from([{"name": "A", "value": "1"}, {"name": "HF_TOKEN", "value": "x"}]),
                    max_size=1,
                )
            ),
            "kvCacheDtype": pick(st.sampled_from(["auto", "fp8"]), st.just("int4")),
        }
    if wide and draw(st.booleans()):
        spec["cost"] = {
            "ceilingUSDPerMillionTokens": pick(st.floats(0.01, 10), st.floats(-1, 0)),
            "pricing": pick(st.sampled_from(["on-demand", "spot", "cud-1y", "cud-3y"]), st.just("free")),
            "window": pick(st.sampled_from(["10m", "1h", "30s"]), st.sampled_from(["0m", "5 min"])),
        }
    name = draw(st.sampled_from(["m", "llama-3", "9lives", "a.b", "x" * 70]))
    return {
        "apiVersion": "datajax.dev/v1alpha1",
        "kind": "DataJaxModel",
        "metadata": {"name": name},
        "spec": spec,
    }


def _check_objects(objects: list[dict[str, Any]], chips_per_host: int) -> None:
    assert [o["kind"] for o in objects][::2] == ["ConfigMap", "Service"]
    for obj in objects:
        assert DNS_1123.match(obj["metadata"]["name"]) and len(obj["metadata"]["name"]) <= 63
        assert all(len(v) <= 63 for v in obj["metadata"]["labels"].values())
    workload = objects[1]
    templates = (
        [workload["spec"]["template"]]
        if workload["kind"] == "Deployment"
        else [workload["spec"]["leaderWorkerTemplate"][k] for k in ("leaderTemplate", "workerTemplate")]
    )
    for template in templates:
        vllm = template["spec"]["containers"][0]
        assert vllm["resources"]["limits"]["google.com/tpu"] == str(chips_per_host)
        assert all("value" not in e for e in vllm.get("env", []) if e["name"] == "HF_TOKEN")
        volume_names = {v["name"] for v in template["spec"]["volumes"]}
        for container in template["spec"]["containers"]:
            assert {m["name"] for m in container["volumeMounts"]} <= volume_names


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_accepted_specs_render_and_rejected_ones_name_a_field(doc: dict[str, Any]) -> None:
    try:
        model = DataJaxModel.model_validate(doc)
        plan = make_plan(model, CONFIG)
    except ValidationError as err:
        problems = validation_problems(err)
    except PlanError as err:
        problems = err.problems
    else:
        _check_objects(render_objects(model, plan, CONFIG), plan.placement.chips_per_host)
        assert plan.mesh.devices == plan.placement.devices  # tp x dp x pp = chips x devices per chip
        return
    assert problems
    for problem in problems:
        assert FIELD.match(problem.field), problem
        assert problem.message
