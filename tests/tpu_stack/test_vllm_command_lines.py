"""Every command line the operator renders is one the real `vllm serve` accepts, meaning what the plan says.

Each example and a few hundred generated valid specs are planned here; all their `vllm serve` argument
lists go to one tpu-env process that parses them with vLLM's own parser and builds
`AsyncEngineArgs.from_cli_args`; the engine arguments must equal the plan. Multi-host leaders are run
through the rendered leader script itself (bash, with `ray` and the readiness check stubbed), so the
arguments are checked as they arrive at `vllm serve` after "$@".

extraArgs are checked against the same parser: whatever it refuses, `plan` refuses naming the field;
whatever reaches a flag the operator derives (an underscore alias, a unique prefix, a short form),
`plan` refuses too; the rest passes.
"""

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datajax_operator.api import DataJaxModel
from datajax_operator.api.tpu import SLICE_SHAPES
from datajax_operator.plan import OperatorConfig, PlanError, make_plan
from datajax_operator.plan.planner import Plan
from datajax_operator.plan.wavespec import (
    FLAG_KV_CACHE_DTYPE,
    FLAG_MAX_NUM_BATCHED_TOKENS,
    FLAG_PREFIX_CACHING,
)
from datajax_operator.render import render_objects
from tests.tpu_stack.conftest import REPO, run_probe

CONFIG = OperatorConfig()
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
GENERATED = 300
SAFE_EXTRA_ARGS = ["--seed=7", "--disable-log-stats", "--max-logprobs=5", "--enforce-eager"]


def expected_engine(model: DataJaxModel, plan: Plan) -> dict[str, Any]:
    """What the plan says vLLM must run with."""
    decided = {d.flag: d.value for d in plan.decisions}
    spec = model.spec
    return {
        "model": spec.model.name,
        "served_model_name": [plan.served_name],
        "revision": spec.model.revision,
        "tensor_parallel_size": plan.mesh.tensor_parallel,
        "data_parallel_size": plan.mesh.data_parallel,
        "pipeline_parallel_size": plan.mesh.pipeline_parallel,
        "max_model_len": spec.model.max_model_len,
        "max_num_batched_tokens": decided[FLAG_MAX_NUM_BATCHED_TOKENS],
        "max_num_seqs": spec.serving.max_num_seqs,
        "enable_prefix_caching": decided[FLAG_PREFIX_CACHING],
        "enable_chunked_prefill": True,
        "kv_cache_dtype": decided[FLAG_KV_CACHE_DTYPE],
        "distributed_executor_backend": "ray" if plan.placement.hosts > 1 else None,
        "host": "0.0.0.0",
        "port": 8000,
    }


def engine_subset(engine: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {k: engine[k] for k in expected}


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """Specs the API accepts and the planner plans, over every slice shape and serving field."""
    generation = draw(st.sampled_from(sorted(SLICE_SHAPES)))
    topology = draw(st.sampled_from(sorted(SLICE_SHAPES[generation])))
    tpu: dict[str, Any] = {"generation": generation, "topology": topology}
    machines = sorted(SLICE_SHAPES[generation][topology])
    if machines and draw(st.booleans()):
        tpu["machineType"] = draw(st.sampled_from(machines))
    max_num_seqs = draw(st.integers(1, 512))
    serving: dict[str, Any] = {
        "maxNumSeqs": max_num_seqs,
        "chunkedPrefill": {"maxNumBatchedTokens": draw(st.integers(max(16, max_num_seqs), 16384))},
    }
    if draw(st.booleans()):
        serving["prefixCaching"] = draw(st.booleans())
    if draw(st.booleans()):
        serving["kvCacheDtype"] = draw(st.sampled_from(["auto", "fp8"]))
    if draw(st.booleans()):
        serving["speculativeDecoding"] = {"method": "ngram", "numSpeculativeTokens": draw(st.integers(1, 16))}
    serving["extraArgs"] = draw(st.lists(st.sampled_from(SAFE_EXTRA_ARGS), max_size=2, unique=True))
    model: dict[str, Any] = {
        "name": draw(st.sampled_from(["org/model", "meta-llama/Llama-3.1-8B-Instruct", "gs://bucket/w"])),
        "maxModelLen": draw(st.integers(16, 131072)),
    }
    if draw(st.booleans()):
        model["servedName"] = draw(st.sampled_from(["chat", "m-1", "a.b"]))
    if draw(st.booleans()):
        model["revision"] = draw(st.sampled_from(["main", "0123abcd"]))
    spec: dict[str, Any] = {"model": model, "tpu": tpu, "serving": serving}
    if generation == "tpu7x":  # the price table has no on-demand price for it
        spec["cost"] = {"usdPerChipHour": 5.0}
    return {
        "apiVersion": "datajax.dev/v1alpha1",
        "kind": "DataJaxModel",
        "metadata": {"name": draw(st.sampled_from(["m", "llama-3", "x" * 40])), "namespace": "ns"},
        "spec": spec,
    }


def plan_or_none(doc: dict[str, Any]) -> tuple[DataJaxModel, Plan] | None:
    model = DataJaxModel.model_validate(doc)
    try:
        return model, make_plan(model, CONFIG)
    except PlanError:
        return None


def collect_generated() -> list[tuple[DataJaxModel, Plan]]:
    found: list[tuple[DataJaxModel, Plan]] = []

    @settings(
        max_examples=GENERATED,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(valid_documents())
    def collect(doc: dict[str, Any]) -> None:
        planned = plan_or_none(doc)
        if planned is not None:
            found.append(planned)

    collect()
    return found


def _leader_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == "LeaderWorkerSet":
            template = obj["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]
            return next(c for c in template["containers"] if c["name"] == "vllm")
    raise AssertionError("no LeaderWorkerSet rendered")


def leader_argv(model: DataJaxModel, plan: Plan, tpu_python: str, tmp_path: Path) -> list[str]:
    """Run the rendered leader container command in bash (Ray and the readiness wait stubbed); return
    the argv that reaches `vllm` through "$@"."""
    container = _leader_container(render_objects(model, plan, CONFIG))
    stubs = tmp_path / "bin"
    stubs.mkdir()
    record = tmp_path / "argv.json"
    scripts = {
        "ray": "#!/bin/sh\nexit 0\n",  # the Ray head starts
        "python3": "#!/bin/sh\nexit 0\n",  # every host has joined
        "vllm": f"#!{tpu_python}\nimport json, sys\njson.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n",
    }
    for name, text in scripts.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(stat.S_IRWXU)
    env = {"PATH": f"{stubs}:{os.environ['PATH']}", "LWS_GROUP_SIZE": "2"}
    subprocess.run([*container["command"], *container["args"]], env=env, check=True, timeout=120)
    argv: list[str] = json.loads(record.read_text())
    return argv


# extraArgs: what the real parser does with each, against what `plan` says. Values differ from the
# 8B example's plan (tp 8, dp 1, 8192 tokens, 256 sequences, prefix caching on, KV auto).
EXTRA_ARGS_CORPUS: list[list[str]] = [
    ["--seed=3"],
    ["--seed", "3"],
    ["--enforce-eager"],
    ["--max_logprobs=4"],  # an alias of a flag the operator leaves alone
    ["--model-impl=auto"],  # shares a prefix with --model
    ["--tensor_parallel_size=1"],
    ["--tensor-parallel=1"],  # a unique prefix
    ["--data_parallel_size", "2"],
    ["--max_model_len=1024"],
    ["--max-model=1024"],
    ["--max_num_batched_tokens=64"],
    ["--max_num_seqs=8"],
    ["--no_enable_prefix_caching"],
    ["--kv_cache_dtype=fp8"],
    ["--served_model_name=other"],
    ["--distributed_executor_backend=mp"],
    ["-tp", "1"],
    ["-pp", "2"],
    ["--convert=bogus"],
    ["--no-such-flag"],
    ["--seed"],  # a value missing
    ["stray-positional"],
    # value types (vllm_flags.json "type"): the real parser's conversion, refused or accepted alike
    ["--seed", "abc"],  # int
    ["--seed", "-1"],  # a negative number is a value, not an option
    ["--seed=1_000"],  # Python's int() reads underscores
    ["--max_num_seqs=abc"],  # an alias of a derived flag, with a value vLLM cannot convert
    ["--max-logprobs", "4.5"],
    ["--gpu-memory-utilization", "lots"],  # float
    ["--gpu-memory-utilization", "0.9"],
    ["--gpu-memory-utilization=.5"],
    ["--num-gpu-blocks-override", "x"],  # optional int
    ["--num-gpu-blocks-override", "None"],  # optional: "None" leaves it unset
    ["--kv-cache-memory-bytes", "2G"],  # human-readable int
    ["--kv-cache-memory-bytes", "1.5K"],  # no decimals with a binary suffix
    ["--max-lora-rank", "08"],  # int choices compare after conversion
    ["--max-lora-rank", "7"],
    ["--hf-overrides", '{"architectures": ["LlamaForCausalLM"]}'],  # a JSON object or a string
    ["--hf-overrides", "{not json}"],
    ["--override-generation-config", "{"],  # JSON
    ["--moe-backend", "FLASHINFER-CUTLASS"],  # folded to flashinfer_cutlass before the choice check
    ["--linear-backend=no-such"],
]


@pytest.fixture(scope="module")
def parsed(tpu_python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every command line of this module, parsed by the real vLLM in one tpu-env process."""
    tmp = tmp_path_factory.mktemp("parse")
    planned = [plan_or_none(yaml.safe_load(p.read_text())) for p in EXAMPLES]
    assert all(planned), "every example plans"
    generated = collect_generated()
    assert len(generated) >= GENERATED * 0.8, f"only {len(generated)} generated specs planned"
    cases = [c for c in planned if c] + generated
    eight_b = yaml.safe_load((REPO / "examples" / "llama3-8b-v6e.yaml").read_text())
    base = plan_or_none(eight_b) or pytest.fail("the 8B example plans")
    two_hosts = {
        **eight_b,
        "spec": {**eight_b["spec"], "tpu": {**eight_b["spec"]["tpu"], "machineType": "ct6e-standard-4t"}},
    }
    leader = plan_or_none(two_hosts) or pytest.fail("the two-host 8B spec plans")
    argv = leader_argv(*leader, tpu_python, tmp)
    argvs = [p.vllm_args for _, p in cases] + [argv[1:], base[1].vllm_args]
    argvs += [base[1].vllm_args + extra for extra in EXTRA_ARGS_CORPUS]
    out = run_probe(tpu_python, "parse_serve.py", {"argvs": argvs}, tmp, REPO / "tools")
    results = out["results"]
    n = len(cases)
    return {
        "cases": list(zip(cases, results[:n], strict=True)),
        "leader": (leader, argv, results[n]),
        "base": (base, results[n + 1]),
        "corpus": list(zip(EXTRA_ARGS_CORPUS, results[n + 2 :], strict=True)),
        "table": out["table"],
    }


def test_examples_and_generated_specs_parse_to_the_plan(parsed: dict[str, Any]) -> None:
    multi_host = 0
    for (model, plan), result in parsed["cases"]:
        assert result["ok"], f"vLLM refused {plan.vllm_args}: {result['error']}"
        expected = expected_engine(model, plan)
        assert engine_subset(result["engine"], expected) == expected, plan.vllm_args
        spec = model.spec.serving.speculative_decoding
        if spec is not None:
            assert result["engine"]["speculative_config"] == {
                "method": spec.method,
                "num_speculative_tokens": spec.num_speculative_tokens,
            }
        multi_host += plan.placement.hosts > 1
    assert multi_host > 0, "the generated specs include multi-host slices"


def test_multi_host_leader_script_hands_vllm_the_planned_arguments(parsed: dict[str, Any]) -> None:
    (model, plan), argv, result = parsed["leader"]
    assert plan.placement.hosts == 2
    assert argv[0] == "serve" and argv[1:] == plan.vllm_args
    assert result["ok"], result
    expected = expected_engine(model, plan)
    assert expected["distributed_executor_backend"] == "ray"
    assert engine_subset(result["engine"], expected) == expected


def test_extra_args_refused_exactly_when_vllm_refuses_or_they_reach_a_derived_flag(
    parsed: dict[str, Any],
) -> None:
    (model, base), base_result = parsed["base"]
    assert base_result["ok"]
    derived = expected_engine(model, base)
    doc = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    for extra, real in parsed["corpus"]:
        doc["spec"]["serving"]["extraArgs"] = extra
        try:
            make_plan(DataJaxModel.model_validate(doc), CONFIG)
            ours = None
        except PlanError as err:
            ours = err.problems
        if not real["ok"]:
            assert ours, f"vLLM refuses {extra} ({real['error']}), plan accepted it"
            assert all(p.field.startswith("spec.serving.extraArgs") for p in ours)
            assert any("refuses" in p.message for p in ours), (extra, ours)
            continue
        if engine_subset(real["engine"], derived) != derived:
            assert ours, f"{extra} changes a derived flag in vLLM, plan accepted it"
            assert all(p.field.startswith("spec.serving.extraArgs") for p in ours)
        else:
            assert ours is None, f"{extra} is harmless to vLLM, plan refused it: {ours}"


def test_committed_flag_table_is_the_installed_parser(parsed: dict[str, Any]) -> None:
    committed = json.loads((REPO / "operator" / "datajax_operator" / "plan" / "vllm_flags.json").read_text())
    assert committed == parsed["table"], (
        "vllm_flags.json drifted: run $(tools/tpu-env.sh) tools/vllm_flags.py"
    )
