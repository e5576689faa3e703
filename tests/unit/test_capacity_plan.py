"""The capacity model `plan` shows: the roofline of one slice against the ceiling's floor on throughput."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from djm_fixtures import ROOT, model_with

from datajax_operator.api.tpu import CATALOG
from datajax_operator.cli import main
from datajax_operator.plan import OperatorConfig, make_plan

LLAMA_8B: dict[str, Any] = {"name": "m", "parametersBillions": 8, "dtype": "bfloat16"}


def test_roofline_of_an_8b_model_on_v6e_2x4_from_the_chip_figures() -> None:
    plan = make_plan(model_with(model=LLAMA_8B), OperatorConfig())
    assert plan.capacity is not None and plan.capacity.roofline is not None
    roof = plan.capacity.roofline
    chip = CATALOG["v6e"]
    # prefill: 8 chips x 918 TFLOP/s over 2 FLOPs x 8e9 parameters
    assert roof.prefill_tokens_per_second == pytest.approx(8 * chip.peak_bf16_flops_per_chip / (2 * 8e9))
    assert roof.prefill_tokens_per_second == pytest.approx(459_000)
    # decode without the KV-cache hints: 256 sequences per read of 16 GB at 8 x 1640 GB/s
    assert chip.hbm_bandwidth_bytes_per_second == 1640e9
    assert roof.decode_bound == "memory" and roof.kv_bytes_per_token is None
    assert roof.decode_tokens_per_second == pytest.approx(256 * 8 * 1640e9 / 16e9)


def test_kv_cache_reads_and_room_limit_the_decode_batch() -> None:
    shaped = {**LLAMA_8B, "numLayers": 32, "kvHeads": 8, "headDim": 128, "maxModelLen": 8192}
    plan = make_plan(
        model_with(model=shaped, tpu={"generation": "v5e", "topology": "2x2"}, serving={"maxNumSeqs": 512}),
        OperatorConfig(),
    )
    assert plan.capacity is not None and plan.capacity.roofline is not None
    roof = plan.capacity.roofline
    kv = 2 * 32 * 8 * 128 * 2  # K and V, per layer, per KV head (8 >= tp 4), bf16
    assert roof.kv_bytes_per_token == kv
    room = 4 * 16 * 2**30 * 0.9 - 16e9  # v5e: 16 GiB of HBM per chip (the TPU catalog)
    assert roof.batch == int(room // (roof.context_tokens * kv)) < 512
    step = (16e9 + roof.batch * roof.context_tokens * kv) / (4 * 819e9)
    assert roof.decode_tokens_per_second == pytest.approx(roof.batch / step)


def test_a_ceiling_the_topology_cannot_reach_is_visible_before_deploying(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    doc = json.loads(json.dumps(_example()))
    doc["spec"]["model"].update(parametersBillions=8, dtype="bfloat16")
    doc["spec"]["cost"] = {"ceilingUSDPerMillionTokens": 0.01}  # 600,000 tokens/s per slice
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    assert main(["plan", "-f", str(path), "-o", "json"]) == 0
    capacity = json.loads(capsys.readouterr().out)["capacity"]
    assert capacity["ceilingReachable"] is False
    assert capacity["breakEvenTokensPerSecondPerSlice"] == pytest.approx(600_000)
    assert capacity["roofline"]["mixedTokensPerSecond"] < 600_000
    assert main(["plan", "-f", str(path), "-o", "table"]) == 0
    table = capsys.readouterr().out
    assert "the ceiling needs 600,000 tokens/s per slice" in table and "NOT reachable" in table
    assert "ROOFLINE" in table and "prefill 459,000 tokens/s" in table


def test_without_the_model_size_plan_says_what_to_set() -> None:
    plan = make_plan(model_with(), OperatorConfig())
    assert plan.capacity is not None and plan.capacity.roofline is None
    assert plan.capacity.ceiling_reachable is None
    assert "set model.parametersBillions and model.dtype" in plan.capacity.summary()


def _example() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "examples" / "llama3-8b-v6e.yaml").read_text()))
