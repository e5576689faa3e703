"""`validate-mesh --target tpu`: libtpu's TPU compiler sizes each example's serving program, no TPU here.

The command runs as a user runs it (the operator's CLI in this venv, the compile in the tpu-env
interpreter it finds through $DATAJAX_TPU_PYTHON or the default cache path). The figures are the
compiler's `memory_analysis()`; the thresholds below are the issue's: Llama 3.1 8B in bf16 on v6e 2x4
holds at least 2 GB of arguments per device, and Llama 3.1 70B on a v6e 2x2 does not fit.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
NEGATIVE = "llama3-70b-on-v6e-2x2"
DESIGN_KEYS = {"fits", "devices", "perDevice", "hbmBytesPerDevice", "compiler", "target", "program"}


Outcome = tuple[int, dict[str, Any] | None, str]


def gate(tpu_python: str, model_file: Path, *extra: str) -> Outcome:
    """The command as a user runs it, in its own process (so several can run side by side)."""
    command = ["validate-mesh", "-f", str(model_file), "--target", "tpu", "--python", tpu_python, *extra]
    done = subprocess.run(
        [sys.executable, "-m", "datajax_operator.cli", *command],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    out = done.stdout
    return done.returncode, (json.loads(out) if out.strip().startswith("{") else None), out + done.stderr


def seventy_b_on_v6e_2x2(directory: Path) -> Path:
    """The issue's negative case: the 8B example's serving settings, Llama 3.1 70B, a v6e 2x2."""
    path = directory / "llama3-70b-v6e-2x2.yaml"
    doc = yaml.safe_load((REPO / "examples" / "llama3-8b-v6e.yaml").read_text())
    doc["spec"]["tpu"]["topology"] = "2x2"
    # Without the parameter hints the planner has no HBM arithmetic to apply; the compiler decides.
    model = {k: v for k, v in doc["spec"]["model"].items() if k not in ("parametersBillions", "dtype")}
    doc["spec"]["model"] = model | {"name": "meta-llama/Llama-3.1-70B-Instruct", "attentionHeads": 64}
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="session")
def verdicts(
    tpu_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Outcome]]]:
    """Every gate run this module needs, started once per session and shared by the tests.

    Each compile costs CPU-minutes (docs/benchmarks.md#tpu-compile-gate), so none is repeated; the
    runs go to a pool sized to the machine (each run already compiles its two steps in two threads)."""
    cases = {p.stem: (p, HF_CONFIG[yaml.safe_load(p.read_text())["spec"]["model"]["name"]]) for p in EXAMPLES}
    cases[NEGATIVE] = (
        seventy_b_on_v6e_2x2(tmp_path_factory.mktemp("gate")),
        HF_CONFIG["meta-llama/Llama-3.1-70B-Instruct"],
    )
    with ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) // 2)) as pool:
        yield {
            name: pool.submit(gate, tpu_python, path, "--hf-config", str(config), "-o", "json")
            for name, (path, config) in cases.items()
        }


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_compiles_and_fits_as_planned(verdicts: dict[str, Future[Outcome]], path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    plan = make_plan(DataJaxModel.model_validate(doc), OperatorConfig())  # the planner accepts it
    code, verdict, text = verdicts[path.stem].result()
    assert verdict is not None, text
    assert set(verdict) >= DESIGN_KEYS
    assert set(verdict["perDevice"]) == {"argumentBytes", "temporaryBytes", "outputBytes"}
    # A plan that pipelines across hosts is compiled as one stage: its share of the devices.
    stages = plan.mesh.pipeline_parallel
    assert verdict["devices"] == plan.placement.devices // stages
    if stages == 1:
        assert verdict["target"].endswith(f":{plan.placement.topology}")
    else:
        assert verdict["program"]["layers"] < 80 and verdict["target"] == "v6e:2x2"
    assert {"jax", "jaxlib", "libtpu"} <= set(verdict["compiler"])
    assert set(verdict["program"]["steps"]) == {"decode", "prefill"}
    # The planner accepted the example; the compiler must agree (where not, the planner is corrected).
    assert (code, verdict["fits"]) == (0, True), text


def test_llama_8b_on_v6e_2x4_holds_its_weights_on_each_chip(verdicts: dict[str, Future[Outcome]]) -> None:
    code, verdict, text = verdicts["llama3-8b-v6e"].result()
    assert code == 0 and verdict is not None, text
    assert verdict["target"] == "v6e:2x4" and verdict["devices"] == 8
    assert verdict["perDevice"]["argumentBytes"] >= 2 * 10**9
    plan = make_plan(
        DataJaxModel.model_validate(yaml.safe_load((REPO / "examples" / "llama3-8b-v6e.yaml").read_text())),
        OperatorConfig(),
    )
    assert verdict["hbmBytesPerDevice"] == plan.placement.hbm_bytes_per_device
    # Both steps were compiled in the one run, their CPU time accounted for.
    assert verdict["program"]["compileCpuSeconds"] > 0
    assert all(step["compileSeconds"] > 0 for step in verdict["program"]["steps"].values())


def test_llama_70b_on_v6e_2x2_does_not_fit_and_names_the_largest_arrays(
    verdicts: dict[str, Future[Outcome]],
) -> None:
    code, verdict, text = verdicts[NEGATIVE].result()
    assert code == 1 and verdict is not None, text
    assert verdict["fits"] is False and verdict["devices"] == 4
    assert verdict["perDevice"]["argumentBytes"] > verdict["hbmBytesPerDevice"]
    largest = verdict["largestArrays"]
    assert largest[0]["bytesPerDevice"] >= largest[-1]["bytesPerDevice"] > 0
    assert {a["name"] for a in largest} >= {"params.w_gate", "params.w_up", "params.w_down"}
    # The MLP weights are stacked over the 80 layers the step scans; one layer's slice is named too.
    w_gate = next(a for a in largest if a["name"] == "params.w_gate")
    assert w_gate["shape"][0] == w_gate["layers"] == 80
    assert w_gate["bytesPerDevicePerLayer"] * 80 == w_gate["bytesPerDevice"]
    table = summary("llama3-70b", verdict)  # what `-o table` prints for the same verdict
    assert "DOES NOT FIT" in table and "largest arrays per device" in table and "params.w_gate" in table
    assert "80 layers" in table


def test_without_shapes_or_interpreter_the_error_names_the_fix(
    capsys: pytest.CaptureFixture[str], tpu_python: str, tmp_path: Path
) -> None:
    example = REPO / "examples" / "llama3-8b-v6e.yaml"
    code = main(["validate-mesh", "-f", str(example), "--target", "tpu", "--python", tpu_python])
    text = "".join(capsys.readouterr())
    assert code == 2 and "--hf-config" in text and "spec.model.numLayers" in text
    code = main(["validate-mesh", "-f", str(example), "--target", "tpu", "--python", str(tmp_path / "x")])
    text = "".join(capsys.readouterr())
    assert code == 2 and "make tpu-env" in text
