"""`validate-mesh --target tpu`: libtpu's TPU compiler sizes each example's serving program, no TPU here.

The command runs as a user runs it (the operator's CLI in this venv, the compile in the tpu-env
interpreter it finds through $DATAJAX_TPU_PYTHON or the default cache path). The figures are the
compiler's `memory_analysis()`; the thresholds below are the issue's: Llama 3.1 8B in bf16 on v6e 2x4
holds at least 2 GB of arguments per device, and Llama 3.1 70B on a v6e 2x2 does not fit.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from datajax_operator.api import DataJaxModel
from datajax_operator.cli import main
from datajax_operator.compile_gate import summary
from datajax_operator.plan import OperatorConfig, make_plan
from tests.tpu_stack.conftest import REPO

CONFIGS = REPO / "examples" / "hf-config"
HF_CONFIG = {
    "meta-llama/Llama-3.1-8B-Instruct": CONFIGS / "meta-llama--Llama-3.1-8B-Instruct.json",
    "meta-llama/Llama-3.1-70B-Instruct": CONFIGS / "meta-llama--Llama-3.1-70B-Instruct.json",
    "Qwen/Qwen2.5-1.5B-Instruct": CONFIGS / "Qwen--Qwen2.5-1.5B-Instruct.json",
}
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
DESIGN_KEYS = {"fits", "devices", "perDevice", "hbmBytesPerDevice", "compiler", "target", "program"}


def gate(
    capsys: pytest.CaptureFixture[str], tpu_python: str, model_file: Path, *extra: str
) -> tuple[int, dict[str, Any] | None, str]:
    code = main(["validate-mesh", "-f", str(model_file), "--target", "tpu", "--python", tpu_python, *extra])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip().startswith("{") else None), out + err


@pytest.fixture(scope="module")
def verdicts() -> dict[Path, tuple[int, dict[str, Any] | None, str]]:
    """Each example's gate run, once per module (a compile costs about a CPU-minute)."""
    return {}


def example_verdict(
    capsys: pytest.CaptureFixture[str],
    tpu_python: str,
    verdicts: dict[Path, tuple[int, dict[str, Any] | None, str]],
    path: Path,
) -> tuple[int, dict[str, Any] | None, str]:
    if path not in verdicts:
        config = HF_CONFIG[yaml.safe_load(path.read_text())["spec"]["model"]["name"]]
        verdicts[path] = gate(capsys, tpu_python, path, "--hf-config", str(config), "-o", "json")
    return verdicts[path]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_compiles_and_fits_as_planned(
    capsys: pytest.CaptureFixture[str], tpu_python: str, verdicts: dict[Path, Any], path: Path
) -> None:
    doc = yaml.safe_load(path.read_text())
    plan = make_plan(DataJaxModel.model_validate(doc), OperatorConfig())  # the planner accepts it
    code, verdict, text = example_verdict(capsys, tpu_python, verdicts, path)
    assert verdict is not None, text
    assert set(verdict) >= DESIGN_KEYS
    assert set(verdict["perDevice"]) == {"argumentBytes", "temporaryBytes", "outputBytes"}
    assert verdict["devices"] == plan.placement.chips
    assert verdict["target"].endswith(f":{plan.placement.topology}")
    assert {"jax", "jaxlib", "libtpu"} <= set(verdict["compiler"])
    assert set(verdict["program"]["steps"]) == {"decode", "prefill"}
    # The planner accepted the example; the compiler must agree (where not, the planner is corrected).
    assert (code, verdict["fits"]) == (0, True), text


def test_llama_8b_on_v6e_2x4_holds_its_weights_on_each_chip(
    capsys: pytest.CaptureFixture[str], tpu_python: str, verdicts: dict[Path, Any]
) -> None:
    code, verdict, text = example_verdict(
        capsys, tpu_python, verdicts, REPO / "examples" / "llama3-8b-v6e.yaml"
    )
    assert code == 0 and verdict is not None, text
    assert verdict["target"] == "v6e:2x4" and verdict["devices"] == 8
    assert verdict["perDevice"]["argumentBytes"] >= 2 * 10**9
    assert verdict["hbmBytesPerDevice"] == 32 * 10**9


def test_llama_70b_on_v6e_2x2_does_not_fit_and_names_the_largest_arrays(
    capsys: pytest.CaptureFixture[str], tpu_python: str, tmp_path: Path
) -> None:
    path = tmp_path / "llama3-70b-v6e-2x2.yaml"
    doc = yaml.safe_load((REPO / "examples" / "llama3-8b-v6e.yaml").read_text())
    doc["spec"]["tpu"]["topology"] = "2x2"
    # Without the parameter hints the planner has no HBM arithmetic to apply; the compiler decides.
    model = {k: v for k, v in doc["spec"]["model"].items() if k not in ("parametersBillions", "dtype")}
    doc["spec"]["model"] = model | {"name": "meta-llama/Llama-3.1-70B-Instruct", "attentionHeads": 64}
    path.write_text(yaml.safe_dump(doc))
    config = HF_CONFIG["meta-llama/Llama-3.1-70B-Instruct"]
    code, verdict, text = gate(capsys, tpu_python, path, "--hf-config", str(config), "-o", "json")
    assert code == 1 and verdict is not None, text
    assert verdict["fits"] is False and verdict["devices"] == 4
    assert verdict["perDevice"]["argumentBytes"] > verdict["hbmBytesPerDevice"]
    largest = verdict["largestArrays"]
    assert largest[0]["bytesPerDevice"] >= largest[-1]["bytesPerDevice"] > 0
    assert {a["name"] for a in largest} >= {"params.w_gate", "params.w_up", "params.w_down"}
    table = summary("llama3-70b", verdict)  # what `-o table` prints for the same verdict
    assert "DOES NOT FIT" in table and "largest arrays per device" in table and "params.w_gate" in table


def test_without_shapes_or_interpreter_the_error_names_the_fix(
    capsys: pytest.CaptureFixture[str], tpu_python: str, tmp_path: Path
) -> None:
    code, _, text = gate(capsys, tpu_python, REPO / "examples" / "llama3-8b-v6e.yaml")
    assert code == 2 and "--hf-config" in text and "spec.model.numLayers" in text
    code, _, text = gate(capsys, str(tmp_path / "no-python"), REPO / "examples" / "llama3-8b-v6e.yaml")
    assert code == 2 and "make tpu-env" in text
