"""The plan bundle's `validation` section and the SPMD case agree: one PartitionSpec parser, one case.

Pure (no JAX): what validate-mesh would run for a bundle, and the bundles the loader refuses.
"""

import copy
import json
import re
from typing import Any

import jsonschema
import pytest

from datajax_runtime.bundle import SCHEMA_PATH, BundleError, load_bundle
from datajax_runtime.partition_spec import ArraySpec, PartitionSpecError, parse_spec
from datajax_runtime.spmd.case import CaseError, MeshCase, case_from_bundle

BUNDLE: dict[str, Any] = {
    "version": 1,
    "modelId": "org/model",
    "mesh": {"axes": ["data", "model"], "shape": [2, 4]},
    "partitionSpecs": {"input": ["data", None], "output": ["data", None]},
    "validation": {
        "program": "plan_models.tiny:forward",
        "inputs": [
            {"name": "tokens", "shape": [16, 64]},
            {"name": "w", "shape": [64, 32], "partitionSpec": [None, "model"], "dtype": "bfloat16"},
        ],
        "outputs": [{"name": "scores"}, {"name": "hidden", "partitionSpec": ["data", "model"]}],
    },
}


def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return loaded


def test_validation_section_becomes_the_case_with_default_specs() -> None:
    case = case_from_bundle(load_bundle(BUNDLE))
    assert case == MeshCase(
        axes=("data", "model"),
        shape=(2, 4),
        program="plan_models.tiny:forward",
        inputs=(
            ArraySpec("tokens", ("data", None), (16, 64)),
            ArraySpec("w", (None, "model"), (64, 32), "bfloat16"),
        ),
        outputs=(ArraySpec("scores", ("data", None)), ArraySpec("hidden", ("data", "model"))),
        seed=0,
    )


def test_canonical_form_round_trips_and_the_schema_accepts_it() -> None:
    bundle = load_bundle(BUNDLE)
    again = load_bundle(bundle.to_json())
    assert again == bundle
    jsonschema.validate(BUNDLE, _schema())
    jsonschema.validate(bundle.to_json(), _schema())


def test_without_validation_the_builtin_runs_with_the_bundle_specs() -> None:
    doc = {k: v for k, v in BUNDLE.items() if k != "validation"}
    doc["partitionSpecs"] = {"input": [["data", "model"], None], "output": ["data", None]}
    case = case_from_bundle(load_bundle(doc))
    assert case.program == "attention_projection"
    assert (case.inputs[0].name, case.inputs[0].spec) == ("x", (("data", "model"), None))
    assert [(a.name, a.spec) for a in case.outputs] == [("out", ("data", None))]


def test_without_validation_a_foreign_mesh_says_what_to_add() -> None:
    doc = {"version": 1, "modelId": "m", "mesh": {"axes": ["rows"], "shape": [8]}}
    with pytest.raises(CaseError, match=re.escape("add validation.program and validation.inputs")):
        case_from_bundle(load_bundle(doc))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda v: v["inputs"][1].update(partitionSpec=[None, "tensor"]),
            "validation.inputs[1] ('w'): P(None, 'tensor') names mesh axis 'tensor', "
            "which the mesh ('data', 'model') lacks",
        ),
        (
            lambda v: v["outputs"][1].update(partitionSpec=["model", "model"]),
            "validation.outputs[1] ('hidden'): P('model', 'model') uses mesh axis 'model' for two dimensions",
        ),
        (lambda v: v["inputs"][0].pop("shape"), "every input needs a sample shape (missing for ['tokens'])"),
        (lambda v: v["inputs"][1].update(name="tokens"), "array names must be distinct"),
        (lambda v: v.update(program="not a program"), "validation.program: want a built-in name"),
        (lambda v: v["inputs"][0].update(shape=[0, 4]), "validation.inputs[0].shape: must be an array"),
        (lambda v: v["outputs"].clear(), "validation.outputs: name at least one output"),
        (lambda v: v["outputs"][0].update(partitionSpec=[[]]), "an empty axis list"),
    ],
)
def test_bad_validation_sections_are_refused(change: Any, message: str) -> None:
    doc = copy.deepcopy(BUNDLE)
    change(doc["validation"])
    with pytest.raises(BundleError, match=re.escape(message)):
        load_bundle(doc)


def test_the_case_json_uses_the_same_parser() -> None:
    raw = {
        "mesh": {"axes": ["data"], "shape": [2]},
        "program": "p",
        "inputs": [{"name": "x", "partitionSpec": 3}],
    }
    with pytest.raises(PartitionSpecError, match=r"inputs\[0\]\.partitionSpec: must be an array"):
        MeshCase.from_json(raw)
    assert parse_spec([None, "a", ["b", "c"]], "s") == (None, "a", ("b", "c"))
