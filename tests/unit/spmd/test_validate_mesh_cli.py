"""`datajax-operator validate-mesh`: the examples' plans pass, wrong plan bundles fail naming array and axis.

Real JAX processes on 127.0.0.1 (one per host of a mesh: the multi-host 4x4 example runs one pipeline
stage per host, so its mesh is one host's 4 devices; with tpu.parallelism TensorAcrossHosts the mesh spans
4 processes x 4 CPU devices).
"""

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from datajax_operator.cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
V5E_2X2 = EXAMPLES / "qwen2.5-1.5b-v5e.yaml"
V6E_2X4 = EXAMPLES / "llama3-8b-v6e.yaml"
V6E_4X4 = EXAMPLES / "llama3-70b-multihost-v6e.yaml"


@pytest.fixture
def v6e_4x4_tensor_across_hosts(tmp_path: Path) -> Path:
    """The multi-host example with tensor parallelism over all 16 devices (one mesh over 4 hosts)."""
    import yaml

    doc = yaml.safe_load(V6E_4X4.read_text())
    doc["spec"]["tpu"]["parallelism"] = "TensorAcrossHosts"
    path = tmp_path / "llama3-70b-tensor-across-hosts.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


# A bundle for the 8B plan (v6e 2x4: data=1, model=8) whose validation case is the plan's own layer.
BUNDLE: dict[str, Any] = {
    "version": 1,
    "modelId": "meta-llama/Llama-3.1-8B-Instruct",
    "mesh": {"axes": ["data", "model"], "shape": [1, 8]},
    "partitionSpecs": {"input": ["data", None], "output": ["data", None]},
    "validation": {
        "program": "attention_projection",
        "seed": 3,
        "inputs": [
            {"name": "x", "shape": [16, 256], "dtype": "float32"},
            {"name": "w_q", "shape": [256, 512], "partitionSpec": [None, "model"]},
            {"name": "w_o", "shape": [512, 256], "partitionSpec": ["model", None]},
        ],
        "outputs": [{"name": "q", "partitionSpec": ["data", "model"]}, {"name": "out"}],
    },
}


def _validate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str, float]:
    start = time.monotonic()
    code = main(["validate-mesh", *argv])
    seconds = time.monotonic() - start
    out, err = capsys.readouterr()
    return code, out, err, seconds


def _bundle(tmp_path: Path, name: str, doc: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize(
    ("path", "processes"),
    [(V5E_2X2, 1), (V6E_2X4, 1), (V6E_4X4, 1)],
    ids=["v5e-2x2", "v6e-2x4", "v6e-4x4-one-stage-per-host"],
)
def test_the_examples_plans_pass(capsys: pytest.CaptureFixture[str], path: Path, processes: int) -> None:
    code, out, err, seconds = _validate(capsys, "-f", str(path))
    assert (code, err) == (0, ""), err
    assert f"{processes} host process(es)" in out and out.rstrip().endswith("s") and ": ok in " in out
    with capsys.disabled():
        print(f"\nvalidate-mesh {path.name}: {processes} process(es), {seconds:.1f}s wall")


def test_a_correct_bundle_passes_and_json_reports_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bundle = _bundle(tmp_path, "bundle.json", BUNDLE)
    code, out, err, _ = _validate(capsys, "-f", str(V6E_2X4), "--bundle", bundle, "-o", "json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["ok"] is True and report["devices"] == 8 and report["problems"] == []


def test_a_bundle_without_validation_section_checks_its_partition_specs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = {k: v for k, v in BUNDLE.items() if k != "validation"}
    doc["partitionSpecs"] = {"input": ["data", None], "output": ["model", None]}
    code, _, err, _ = _validate(capsys, "-f", str(V6E_2X4), "--bundle", _bundle(tmp_path, "b.json", doc))
    assert code == 1
    assert "output 'out' is mis-sharded: the plan says P('model', None)" in err
    assert "dim 0 should be over mesh axis 'model' (x8)" in err


def test_axis_missing_from_the_mesh(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = copy.deepcopy(BUNDLE)
    doc["validation"]["inputs"][1]["partitionSpec"] = [None, "tensor"]
    code, out, err, _ = _validate(capsys, "-f", str(V6E_2X4), "--bundle", _bundle(tmp_path, "b.json", doc))
    assert (code, out) == (1, "")
    assert (
        "validation.inputs[1] ('w_q'): P(None, 'tensor') names mesh axis 'tensor', "
        "which the mesh ('data', 'model') lacks" in err
    )


def test_axis_size_not_dividing_an_array_dimension(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = copy.deepcopy(BUNDLE)
    doc["validation"]["inputs"][1]["shape"] = [256, 100]
    code, _, err, _ = _validate(capsys, "-f", str(V6E_2X4), "--bundle", _bundle(tmp_path, "b.json", doc))
    assert code == 1
    assert "error: input 'w_q' dim 1 (size 100) is not divisible by mesh axis 'model' (size 8)" in err


def test_output_sharded_on_the_wrong_axis(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = copy.deepcopy(BUNDLE)
    doc["validation"]["outputs"][0]["partitionSpec"] = ["model", "data"]
    code, out, err, _ = _validate(capsys, "-f", str(V6E_2X4), "--bundle", _bundle(tmp_path, "b.json", doc))
    assert code == 1 and "MIS-SHARDED" in out
    assert "output 'q' is mis-sharded: the plan says P('model', 'data')" in err
    assert (
        "dim 1 should be over mesh axis 'data' (x1), the lowering splits it over mesh axis 'model' (x8)"
        in err
    )


def test_a_mesh_across_hosts_runs_one_process_per_host(
    capsys: pytest.CaptureFixture[str], v6e_4x4_tensor_across_hosts: Path
) -> None:
    code, out, err, _ = _validate(capsys, "-f", str(v6e_4x4_tensor_across_hosts))
    assert (code, err) == (0, ""), err
    assert "4 host process(es) x 4 CPU devices: ok" in out


def test_hosts_disagreeing_on_the_bundle(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, v6e_4x4_tensor_across_hosts: Path
) -> None:
    doc = copy.deepcopy(BUNDLE)
    doc["mesh"]["shape"] = [1, 16]
    doc["validation"]["inputs"][1]["shape"] = [256, 1024]
    doc["validation"]["inputs"][2]["shape"] = [1024, 256]
    stale = copy.deepcopy(doc)
    stale["validation"]["outputs"][1]["partitionSpec"] = [None, None]  # host 2 still has last week's plan
    good, old = _bundle(tmp_path, "good.json", doc), _bundle(tmp_path, "stale.json", stale)
    code, out, err, seconds = _validate(
        capsys,
        "-f",
        str(v6e_4x4_tensor_across_hosts),
        "--bundle",
        good,
        "--bundle",
        good,
        "--bundle",
        old,
        "--bundle",
        good,
    )
    assert code == 1 and "4 host process(es) x 4 CPU devices: MIS-SHARDED" in out
    assert "error: hosts disagree on the plan they loaded: hosts [0, 1, 3] read plan" in err
    assert "hosts [2] read plan" in err
    with capsys.disabled():
        print(f"\nvalidate-mesh 4x4, hosts disagreeing: 4 processes, {seconds:.1f}s wall")


def test_a_bundle_mesh_that_does_not_span_the_slice(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = copy.deepcopy(BUNDLE)
    doc["mesh"]["shape"] = [1, 4]
    code, _, err, _ = _validate(capsys, "-f", str(V6E_2X4), "--bundle", _bundle(tmp_path, "b.json", doc))
    assert code == 1
    assert "its mesh data=1 x model=4 spans 4 devices, but the plan's v6e 2x4 slice has 8 devices" in err


def test_bundles_must_be_one_or_one_per_host(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "b.json", BUNDLE)
    code, _, err, _ = _validate(capsys, "-f", str(V6E_4X4), "--bundle", bundle, "--bundle", bundle)
    assert code == 1 and "one --bundle for every host or exactly one per host (4), not 2" in err


def test_an_invalid_spec_exits_2_before_starting_jax(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(V6E_2X4.read_text().replace("topology: 2x4", "topology: 3x3"))
    code, out, err, _ = _validate(capsys, "-f", str(path))
    assert (code, out) == (2, "") and err.startswith("spec.tpu.topology")
