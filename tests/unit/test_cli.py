"""`datajax-operator plan` and `crd`: exit codes, JSON keys of DESIGN §6, one problem per line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from djm_fixtures import EXAMPLES, ROOT, doc_with

from datajax_operator.cli import main

EIGHT_B = ROOT / "examples" / "llama3-8b-v6e.yaml"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_plan_json_has_the_design_keys(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    code, out, err = _run(capsys, "plan", "-f", str(path), "-o", "json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    # DESIGN §6 keys in order, plus `decisions` (the wave-spec-informed flags with their reasons),
    # `capacity` (one slice's roofline against the ceiling's floor on its throughput) and `storage`
    # (issue 15); inside objects, DESIGN §6's keys come first and the additions after them.
    assert list(doc) == [
        "placement",
        "mesh",
        "cost",
        "vllmArgs",
        "decisions",
        "capacity",
        "storage",
        "objects",
    ]
    assert list(doc["placement"]) == [
        "generation", "accelerator", "topology", "chips", "hosts", "chipsPerHost", "machineType", "workload",
        "devicesPerChip", "devices", "selectsMachineType",
    ]  # fmt: skip
    assert list(doc["mesh"]) == [
        "axes", "shape", "tensorParallel", "dataParallel", "pipelineParallel", "engines", "structure"
    ]  # fmt: skip
    assert list(doc["cost"])[:4] == [
        "usdPerChipHour",
        "usdPerHour",
        "ceilingUSDPerMillionTokens",
        "breakEvenTokensPerSecond",
    ]
    assert list(doc["storage"]) == ["kind", "sizeGi", "downloadDir", "xlaCache"]
    assert all(isinstance(a, str) for a in doc["vllmArgs"])
    assert [list(d) for d in doc["decisions"]] == [["flag", "value", "source", "reason"]] * 5
    assert [o["kind"] for o in doc["objects"]][-1] == "Service"


def test_plan_of_the_8b_example(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "plan", "-f", str(EIGHT_B))
    doc = json.loads(out)
    assert doc["placement"] == {
        "generation": "v6e",
        "accelerator": "tpu-v6e-slice",
        "topology": "2x4",
        "chips": 8,
        "hosts": 1,
        "chipsPerHost": 8,
        "machineType": "ct6e-standard-8t",
        "workload": "Deployment",
        "devicesPerChip": 1,
        "devices": 8,
        "selectsMachineType": True,
    }
    assert doc["mesh"] == {
        "axes": ["data", "model"],
        "shape": [1, 8],
        "tensorParallel": 8,
        "dataParallel": 1,
        "pipelineParallel": 1,
        "engines": 1,
        "structure": "1 engine(s), each process a ('data', 'model') mesh of (1, 8): 8 devices",
    }
    assert doc["cost"] == {
        "usdPerChipHour": 2.7,
        "usdPerHour": 21.6,
        "ceilingUSDPerMillionTokens": 3.0,
        "breakEvenTokensPerSecond": 2000.0,
    }


def test_plan_yaml_equals_json(capsys: pytest.CaptureFixture[str]) -> None:
    _, as_json, _ = _run(capsys, "plan", "-f", str(EIGHT_B), "-o", "json")
    _, as_yaml, _ = _run(capsys, "plan", "-f", str(EIGHT_B), "-o", "yaml")
    assert yaml.safe_load(as_yaml) == json.loads(as_json)


def test_plan_table_is_what_a_person_reads(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "plan", "-f", str(EIGHT_B), "-o", "table")
    assert code == 0
    for expected in (
        "v6e",
        "2x4",
        "ct6e-standard-8t",
        "Deployment",
        "model=8",
        "$21.60/hour",
        "2,000.0 tokens/s",
    ):
        assert expected in out
    assert "vllm serve meta-llama/Llama-3.1-8B-Instruct" in out
    assert "--tensor-parallel-size=8" in out


def test_invalid_spec_exits_2_with_one_problem_per_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = doc_with(
        tpu={"generation": "v6e", "topology": "3x3"},
        replicas=-1,
        cost={"window": "ten minutes"},
    )
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, out, err = _run(capsys, "plan", "-f", str(path))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["spec.replicas", "spec.cost.window"]
    assert "unit s, m or h" in lines[1]


def test_planner_problems_are_all_printed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    doc = doc_with(
        tpu={"generation": "v6e", "topology": "3x3"},
        serving={"extraArgs": ["--port=1"]},
    )
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    code, _, err = _run(capsys, "plan", "-f", str(path))
    assert code == 2
    assert [line.split(":", 1)[0] for line in err.splitlines()] == [
        "spec.tpu.topology",
        "spec.serving.extraArgs",
    ]


def test_a_wrongly_typed_extra_arg_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(doc_with(serving={"extraArgs": ["--seed=1", "--gpu-memory-utilization", "lots"]}))
    )
    code, out, err = _run(capsys, "plan", "-f", str(path))
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("spec.serving.extraArgs[1]: ")
    assert "argument --gpu-memory-utilization: expects a number" in line and "'lots'" in line


def test_unreadable_file_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "plan", "-f", str(tmp_path / "missing.yaml"))
    assert code == 1 and "missing.yaml" in err


def test_bad_config_file_exits_2_naming_the_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("prices: {v6e: {on-demand: -2}}\n")
    code, _, err = _run(capsys, "plan", "-f", str(EIGHT_B), "--config", str(config))
    assert code == 2 and "prices.v6e.on-demand" in err


def test_config_file_changes_the_price(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"prices": {"v6e": {"on-demand": 1.0}}}))
    _, out, _ = _run(capsys, "plan", "-f", str(EIGHT_B), "--config", str(config))
    assert json.loads(out)["cost"]["usdPerHour"] == 8.0


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as err:
        main(["plan"])
    assert err.value.code == 2


def test_crd_command_prints_the_checked_in_crd(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "crd")
    assert code == 0
    assert out == (ROOT / "crds" / "datajaxmodels.datajax.dev.yaml").read_text()


def test_console_script_reads_stdin() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "datajax_operator.cli", "plan", "-f", "-", "-o", "json"],
        input=EIGHT_B.read_text(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["placement"]["chips"] == 8


@pytest.mark.parametrize(
    ("tpu", "topology"),
    [
        ({"generation": "v6e", "topology": "2x4"}, "v6e:2x4"),
        ({"generation": "v5e", "topology": "2x2"}, "v5e:2x2"),
        ({"generation": "v5p", "topology": "2x2x1"}, "v5p:2x2x1"),
        ({"generation": "tpu7x", "topology": "2x2x1"}, "tpu7x:2x2x1"),
    ],
)
def test_the_compile_gate_names_the_slice_as_libtpu_does(tpu: dict[str, str], topology: str) -> None:
    """`validate-mesh --target tpu`'s request: `get_topology_desc` takes these names (jax 0.11.0, libtpu
    0.0.44) and refuses "v7x:2x2x1" as an invalid TPU external name."""
    from datajax_operator.api import DataJaxModel
    from datajax_operator.plan import OperatorConfig, make_plan
    from datajax_operator.plan.gate_request import gate_request, model_shape_from_spec

    shape = {"attentionHeads": 32, "kvHeads": 8, "numLayers": 32, "headDim": 128}
    doc = doc_with(
        model={"name": "m", **shape, "parametersBillions": 8, "dtype": "bfloat16"},
        tpu=tpu,
        cost={"usdPerChipHour": 1.0},  # tpu7x has no list price
    )
    model = DataJaxModel.model_validate(doc)
    request = gate_request(make_plan(model, OperatorConfig()), model.spec, model_shape_from_spec(model.spec))
    assert request["topology"] == topology
