"""The wave spec inside make_plan and `datajax-operator plan --wavespec`: derived flags, explicit wins.

The exporter summaries are the golden fixtures of tests/unit/wavespec; here they go through the whole
planner, so what `plan` prints and the rendered vLLM args are checked to agree.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from djm_fixtures import doc_with, model_with

from datajax_operator.cli import main
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan
from datajax_operator.plan.problems import PlanError

WAVESPECS = Path(__file__).parent / "wavespec"
CHAT = WAVESPECS / "chat-shared-system-prompt.wavespec.json"
UNIQUE_DOCS = WAVESPECS / "summarize-unique-documents.wavespec.json"
SHAPE_HINTS = {"kvHeads": 8, "numLayers": 32, "headDim": 128, "parametersBillions": 8, "dtype": "bfloat16"}


def _wave(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _args_by_flag(args: list[str]) -> dict[str, str]:
    return {a.split("=", 1)[0]: a for a in args if a.startswith("--")}


def test_wave_spec_replaces_the_defaults_and_the_args_follow_the_decisions() -> None:
    model = model_with(model={"name": "org/model", **SHAPE_HINTS})
    without = make_plan(model, OperatorConfig())
    plan = make_plan(model, OperatorConfig(), _wave(UNIQUE_DOCS))
    before, after = _args_by_flag(without.vllm_args), _args_by_flag(plan.vllm_args)
    # vLLM's own `vllm serve` default on v6e (vllm/engine/arg_utils.py), not the generic 2048.
    assert before["--max-num-batched-tokens"] == "--max-num-batched-tokens=1024"
    assert after["--max-num-batched-tokens"] == "--max-num-batched-tokens=8192"
    assert "--enable-prefix-caching" in before and "--no-enable-prefix-caching" in after
    assert before["--kv-cache-dtype"] == "--kv-cache-dtype=auto"
    assert after["--kv-cache-dtype"] == "--kv-cache-dtype=fp8"
    sources = {d.flag: d.source for d in plan.decisions}
    assert sources["--max-num-batched-tokens"] == sources["--kv-cache-dtype"] == "wavespec"
    # unique documents need more context than the default 4096: a warning, not an error
    assert [(w.field, w.severity) for w in plan.warnings] == [("spec.model.maxModelLen", "warning")]


def test_explicit_spec_values_win_over_the_wave_spec() -> None:
    model = model_with(
        model={"name": "org/model", **SHAPE_HINTS},
        serving={
            "prefixCaching": True,
            "kvCacheDtype": "auto",
            "chunkedPrefill": {"maxNumBatchedTokens": 512},
        },
    )
    plan = make_plan(model, OperatorConfig(), _wave(UNIQUE_DOCS))
    args = _args_by_flag(plan.vllm_args)
    assert args["--max-num-batched-tokens"] == "--max-num-batched-tokens=512"
    assert "--enable-prefix-caching" in args and args["--kv-cache-dtype"] == "--kv-cache-dtype=auto"
    assert {d.flag: d.source for d in plan.decisions if d.flag != "--enable-chunked-prefill"} == {
        "--enable-prefix-caching": "spec",
        "--max-num-batched-tokens": "spec",
        "--max-model-len": "spec",
        "--kv-cache-dtype": "spec",
    }


def test_an_explicit_default_value_still_wins() -> None:
    """`prefixCaching: true` written out is a choice, even though it equals vLLM's default."""
    model = model_with(serving={"prefixCaching": True})
    plan = make_plan(model, OperatorConfig(), _wave(UNIQUE_DOCS))
    assert "--enable-prefix-caching" in plan.vllm_args
    assert next(d for d in plan.decisions if d.flag == "--enable-prefix-caching").source == "spec"


def test_a_bad_wave_spec_is_a_plan_problem_naming_the_field() -> None:
    broken = _wave(CHAT)
    broken["meta"]["row_count"] = -1
    with pytest.raises(PlanError) as err:
        make_plan(model_with(), OperatorConfig(), broken)
    assert [p.field for p in err.value.problems] == ["spec.plan.waveSpecRef (waveSpec.meta.row_count)"]


def test_a_chunk_below_max_num_seqs_is_reported_once() -> None:
    """The CRD rule and the wave-spec check both see it; the user reads it once."""
    model = model_with(serving={"maxNumSeqs": 512, "chunkedPrefill": {"maxNumBatchedTokens": 256}})
    with pytest.raises(PlanError) as err:
        make_plan(model, OperatorConfig(), _wave(CHAT))
    fields = [p.field for p in err.value.problems]
    assert fields == ["spec.serving.chunkedPrefill.maxNumBatchedTokens"]


def _plan_cli(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, doc: dict[str, Any], *argv: str
) -> tuple[int, str, str]:
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(doc))
    code = main(["plan", "-f", str(path), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_wavespec_json_lists_each_decision_with_its_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sized = {"emptyDir": {"sizeLimit": "40Gi"}}  # no size hints: say the disk, or `plan` warns
    doc = doc_with(model={"name": "org/model", "maxModelLen": 4096, "storage": sized})
    code, out, err = _plan_cli(capsys, tmp_path, doc, "--wavespec", str(CHAT))
    assert (code, err) == (0, "")
    result = json.loads(out)
    decisions = {d["flag"]: d for d in result["decisions"]}
    assert decisions["--max-num-batched-tokens"]["value"] == 4096
    assert decisions["--max-num-batched-tokens"]["reason"].startswith("p90 prompt 2,460 tokens")
    assert "--max-num-batched-tokens=4096" in result["vllmArgs"]
    container = result["objects"][-2]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == result["vllmArgs"]


def test_plan_table_prints_the_reasons_and_warnings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = doc_with(plan={"waveSpecRef": {"name": "docs-wavespec"}})
    code, out, err = _plan_cli(capsys, tmp_path, doc, "-o", "table", "--wavespec", str(UNIQUE_DOCS))
    assert (code, err) == (0, "")
    assert "SERVING DECISIONS" in out
    assert "--no-enable-prefix-caching     [wavespec]  0% of 20,000 requests reuse an earlier prefix" in out
    assert "WARNINGS\n  spec.model.maxModelLen: p99 prompt 7,810 + p99 output 620" in out


def test_plan_without_the_referenced_wave_spec_says_how_to_pass_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = doc_with(plan={"waveSpecRef": {"name": "docs-wavespec"}})
    code, _, err = _plan_cli(capsys, tmp_path, doc, "-o", "json")
    assert code == 0
    assert "spec.plan.waveSpecRef names ConfigMap docs-wavespec" in err and "--wavespec FILE" in err


def test_plan_json_prints_warnings_on_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _plan_cli(capsys, tmp_path, doc_with(), "--wavespec", str(UNIQUE_DOCS))
    assert code == 0
    assert err.startswith("warning: spec.model.maxModelLen: p99 prompt 7,810")


def test_plan_with_an_unreadable_wave_spec_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "ws.json"
    bad.write_text("[1, 2]")
    code, _, err = _plan_cli(capsys, tmp_path, doc_with(), "--wavespec", str(bad))
    assert code == 1 and "a wave spec is a JSON object" in err
