"""Golden tests: realistic exporter summaries -> the vLLM args and reasons `plan` prints.

Regenerate after an intended change with ``DATAJAX_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from tests.golden import check_golden

from datajax_operator.plan.wavespec import (
    KvBudget,
    ServingInputs,
    derive_serving_defaults,
    parse_wavespec,
    render_args,
    serving_findings,
)

HERE = Path(__file__).parent
CASES: dict[str, dict[str, Any]] = json.loads((HERE / "cases.json").read_text())


def _inputs(raw: dict[str, Any]) -> ServingInputs:
    budget = raw.pop("kv_budget", None)
    return ServingInputs(**raw, kv_budget=KvBudget(**budget) if budget else None)


def _outcome(case: dict[str, Any]) -> dict[str, Any]:
    ws = parse_wavespec((HERE / case["wavespec"]).read_text()) if case["wavespec"] else None
    inputs = _inputs(dict(case["inputs"]))
    decisions = derive_serving_defaults(ws, inputs)
    return {
        "args": render_args(decisions),
        "decisions": [asdict(d) for d in decisions],
        "findings": [asdict(f) for f in serving_findings(ws, inputs)],
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    got = _outcome(CASES[name])
    check_golden(HERE / f"{name}.golden.json", json.dumps(got, indent=2) + "\n")


def test_shared_system_prompts_turn_prefix_caching_on_and_chunk_covers_p90() -> None:
    got = _outcome(CASES["chat-shared-system-prompt"])
    assert "--enable-prefix-caching" in got["args"]
    assert "--max-num-batched-tokens=4096" in got["args"]
    assert got["findings"] == []


def test_unique_documents_turn_prefix_caching_off_and_warn_on_model_len() -> None:
    got = _outcome(CASES["summarize-unique-documents"])
    assert "--no-enable-prefix-caching" in got["args"]
    assert [f["field"] for f in got["findings"]] == ["spec.model.maxModelLen"]
    assert got["findings"][0]["severity"] == "warning"


def test_short_prompts_raise_chunk_to_max_num_seqs() -> None:
    got = _outcome(CASES["rag-short-prompts"])
    assert "--max-num-batched-tokens=512" in got["args"]


def test_kv_bound_workload_suggests_fp8() -> None:
    got = _outcome(CASES["long-context-kv-bound"])
    assert got["args"][-1] == "--kv-cache-dtype=fp8"


def test_explicit_values_win_over_the_wave_spec() -> None:
    got = _outcome(CASES["explicit-values-win"])
    sources = {d["flag"]: d["source"] for d in got["decisions"]}
    assert sources["--enable-prefix-caching"] == "spec"
    assert sources["--max-num-batched-tokens"] == "spec"
    assert "--no-enable-prefix-caching" in got["args"]
    assert "--max-num-batched-tokens=1024" in got["args"]
