"""Plan bundle: schema validity, determinism, the DataJAX LoweredPlan adapter, the callable factory."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from datajax_runtime.bundle import (
    SCHEMA_PATH,
    BundleError,
    PlanCallableFactory,
    build_model_definition,
    bundle_from_lowered_plan,
    bundle_hash,
    load_bundle,
)

BUNDLE: dict[str, Any] = {
    "version": 1,
    "modelId": "meta-llama/Llama-3.1-8B-Instruct",
    "architecture": {"name": "DataJaxPlanForCausalLM", "implementation": "plan_models.tiny:PlanModel"},
    "mesh": {"axes": ["data", "model"], "shape": [2, 4]},
    "partitionSpecs": {"input": ["data", None], "output": [["data", "model"]]},
    "columns": ["user", "score"],
}


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def test_the_schema_is_shipped_in_the_package_and_accepts_a_full_bundle() -> None:
    assert SCHEMA_PATH.parent.name == "datajax_runtime"
    jsonschema.validate(BUNDLE, schema())
    jsonschema.validate(load_bundle(BUNDLE).to_json(), schema())  # our canonical form stays valid


def test_same_bundle_same_definition_whatever_the_key_order(tmp_path: Path) -> None:
    shuffled = json.loads(json.dumps(BUNDLE, sort_keys=True))
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(shuffled, indent=7), encoding="utf-8")
    one, two = build_model_definition(BUNDLE), build_model_definition(path)
    assert one == two
    assert one.hash == two.hash == bundle_hash(load_bundle(BUNDLE))
    assert one.hash.startswith("sha256:") and len(one.hash) == len("sha256:") + 64
    assert one.mesh_axes == ("data", "model") and one.mesh_shape == (2, 4) and one.devices == 8
    assert one.in_spec == ("data", None)
    assert one.out_spec == (("data", "model"),)
    assert one.mesh_description == "data=2,model=4"


def test_a_different_mesh_is_a_different_hash() -> None:
    other = json.loads(json.dumps(BUNDLE))
    other["mesh"]["shape"] = [1, 8]
    assert build_model_definition(other).hash != build_model_definition(BUNDLE).hash


def test_partition_specs_build_jax_partition_specs() -> None:
    from jax.sharding import PartitionSpec

    definition = build_model_definition(BUNDLE)
    assert PartitionSpec(*definition.in_spec) == PartitionSpec("data", None)
    assert PartitionSpec(*definition.out_spec) == PartitionSpec(("data", "model"))


def broken(path: str, value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(BUNDLE))
    *parents, last = path.split(".")
    target = doc
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("version", 2, "version: this runtime reads bundle version 1"),
        ("modelId", "", "modelId: must be a non-empty string"),
        ("mesh.shape", [2], "mesh.shape: 1 sizes for 2 axes"),
        ("mesh.shape", [0, 4], "mesh.shape[0]: must be a positive integer"),
        ("mesh.axes", ["data", "data"], "mesh.axes: axis names must be distinct"),
        ("mesh", _DELETE, "mesh: must be an object"),
        ("architecture.implementation", "plan_models.tiny.PlanModel", "want 'package.module:ClassName'"),
        (
            "partitionSpecs.input",
            ["rows"],
            "partitionSpecs.input: P('rows') names mesh axis 'rows', which the mesh ('data', 'model') lacks",
        ),
        ("partitionSpecs.input", ["data", "data"], "uses mesh axis 'data' for two dimensions"),
        ("extra", 1, "bundle: unknown field(s) extra"),
    ],
)
def test_invalid_bundles_are_refused_by_the_loader_and_the_schema(
    path: str, value: Any, message: str
) -> None:
    doc = broken(path, value)
    with pytest.raises(BundleError, match=re.escape(message)):
        load_bundle(doc)
    semantic_only = {"partitionSpecs.input", "mesh.shape"}
    if path not in semantic_only or value == [0, 4]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, schema())


def test_unreadable_bundle_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="cannot read bundle"):
        load_bundle(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(BundleError, match="is not JSON"):
        load_bundle(tmp_path / "bad.json")


# ------------------------------------------------------------- the DataJAX LoweredPlan adapter


@dataclass(frozen=True)
class Resource:  # the shape of datajax.api.sharding.Resource
    mesh_axes: tuple[str, ...]
    world_size: int


@dataclass(frozen=True)
class ExecutionPlan:
    resources: Resource


@dataclass(frozen=True)
class LoweredPlan:  # the fields of datajax.jax_bridge.lowering.LoweredPlan
    plan: ExecutionPlan
    mesh: Any
    in_spec: Any
    out_spec: Any
    columns: tuple[str, ...]
    callable: Any


def lowered_plan(world_size: int = 8) -> LoweredPlan:
    from jax.sharding import PartitionSpec

    def run(payload: Any) -> dict[str, Any]:
        return {"score": [v * 2 for v in payload["value"]], "user": payload["user"], "scratch": 0}

    return LoweredPlan(
        plan=ExecutionPlan(Resource(("data", "model"), world_size)),
        mesh=None,
        in_spec=PartitionSpec("data"),
        out_spec=PartitionSpec(("data", "model"), None),
        columns=("user", "score"),
        callable=run,
    )


@pytest.mark.parametrize(
    ("world", "shape"), [(8, [2, 4]), (4, [2, 2]), (6, [2, 3]), (7, [1, 7]), (1, [1, 1])]
)
def test_lowered_plan_becomes_a_bundle_with_datajax_mesh_rule(world: int, shape: list[int]) -> None:
    bundle = bundle_from_lowered_plan(lowered_plan(world), model_id="m")
    doc = bundle.to_json()
    assert doc["mesh"] == {"axes": ["data", "model"], "shape": shape}
    assert doc["partitionSpecs"] == {"input": ["data"], "output": [["data", "model"], None]}
    assert doc["columns"] == ["user", "score"]
    jsonschema.validate(doc, schema())
    assert bundle_hash(bundle) == bundle_hash(bundle_from_lowered_plan(lowered_plan(world), model_id="m"))


def test_explicit_axis_sizes_win_over_the_derived_shape() -> None:
    @dataclass(frozen=True)
    class SizedResource:
        mesh_axes: tuple[str, ...]
        world_size: int
        axis_sizes: tuple[int, ...]

    plan = lowered_plan()
    sized = LoweredPlan(
        ExecutionPlan(SizedResource(("data", "model"), 8, (1, 8))), None, None, None, (), plan.callable
    )
    assert bundle_from_lowered_plan(sized, model_id="m").mesh_shape == (1, 8)


def test_lowered_plan_without_resources_is_refused() -> None:
    plan = lowered_plan()
    empty = LoweredPlan(ExecutionPlan(None), None, None, None, (), plan.callable)  # type: ignore[arg-type]
    with pytest.raises(BundleError, match=r"no plan\.resources"):
        bundle_from_lowered_plan(empty, model_id="m")


def test_callable_factory_binds_payloads_and_checks_the_mesh() -> None:
    factory = PlanCallableFactory.from_lowered_plan(lowered_plan(), model_id="m")
    tokenizer = {"vocab_size": 128256, "pad_token_id": 0}
    config = {"mesh": {"axes": ["data", "model"], "shape": [2, 4]}, "max_model_len": 4096}
    fn = factory(tokenizer=tokenizer, config=config)
    assert fn({"user": ["a", "b"], "value": [1, 2]}) == {"user": ["a", "b"], "score": [2, 4]}
    assert list(fn({"user": [], "value": []})) == ["user", "score"]  # column order of the plan
    assert fn.fingerprint == factory(tokenizer=dict(tokenizer), config=dict(config)).fingerprint
    assert fn.fingerprint != factory(tokenizer={"vocab_size": 32000}, config=config).fingerprint
    with pytest.raises(BundleError, match="differs from the plan's data=2,model=4"):
        factory(config={"mesh": {"axes": ["data", "model"], "shape": [1, 8]}})
    with pytest.raises(BundleError, match="must be JSON data"):
        factory(tokenizer={"encode": object()})
