"""extraArgs are read as vLLM 0.29's parser reads them (issue 19, item 4): aliases reach derived flags.

vLLM's FlexibleArgumentParser turns `--tensor_parallel_size` into `--tensor-parallel-size`, argparse
accepts any unique prefix (`--tensor-parallel`), and vLLM has short forms (`-tp`, `-pp`); since extraArgs
come last, each would override what the operator derives. The recorded table of the real parser
(datajax_operator/plan/vllm_flags.json, checked against vLLM itself in the tpu_stack tier) decides.
"""

import pytest
from djm_fixtures import model_with

from datajax_operator.plan import OperatorConfig, PlanError, make_plan
from datajax_operator.plan.vllm_flags import FlagError, dests_set_by, flag_table, normalise

CONFIG = OperatorConfig()


def problems_for(*extra: str) -> list[tuple[str, str]]:
    try:
        make_plan(model_with(serving={"extraArgs": list(extra)}), CONFIG)
    except PlanError as err:
        return [(p.field, p.message) for p in err.problems]
    return []


@pytest.mark.parametrize(
    ("extra", "derived"),
    [
        (["--tensor_parallel_size=1"], "--tensor-parallel-size"),
        (["--tensor-parallel=1"], "--tensor-parallel-size"),
        (["--tensor_parallel", "1"], "--tensor-parallel-size"),
        (["--max_model_len=1024"], "--max-model-len"),
        (["--max-model", "1024"], "--max-model-len"),
        (["--data_parallel_size=2"], "--data-parallel-size"),
        (["--no_enable_prefix_caching"], "--enable-prefix-caching"),
        (["--kv_cache_dtype=fp8"], "--kv-cache-dtype"),
        (["--served_model_name", "other"], "--served-model-name"),
        (["--pipeline_parallel_size=2"], "--pipeline-parallel-size"),
        (["--download_dir=/tmp"], "--download-dir"),
    ],
)
def test_alias_of_a_derived_flag_is_refused_naming_the_field(extra: list[str], derived: str) -> None:
    ((field, message),) = problems_for("--seed=1", *extra)
    assert field == "spec.serving.extraArgs[1]"
    assert derived in message and "derives" in message


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["--no-such-flag"], "unrecognized arguments"),
        (["--seed"], "expected one argument"),
        (["--convert=bogus"], "invalid choice"),
        (["--config=/etc/vllm.yaml"], "--config"),
        (["stray"], "unrecognized arguments"),
    ],
)
def test_what_vllm_refuses_plan_refuses(extra: list[str], why: str) -> None:
    found = problems_for(*extra)
    assert found and all(f.startswith("spec.serving.extraArgs[") for f, _ in found)
    assert any(why in m and "vLLM 0.29.0 refuses" in m for _, m in found), found


def test_harmless_flags_and_neighbours_of_derived_ones_pass() -> None:
    assert problems_for("--seed", "3", "--model-impl=auto", "--max_logprobs=5", "--enforce-eager") == []


def test_normalise_follows_vllms_rewriting() -> None:
    assert normalise(["--max_num_seqs=4", "-O3", "--compilation_config.level", "3", "-x_y"]) == [
        "--max-num-seqs=4",
        "--optimization-level",
        "3",
        "--compilation-config",
        "{}",  # vLLM folds the dotted pair into one JSON value for the flag
        "-x_y",
    ]


def test_destinations_come_from_the_recorded_parser() -> None:
    assert flag_table().vllm_version == "0.29.0"
    assert dests_set_by(["-tp", "2", "--seed=1"]) == {"tensor_parallel_size", "seed"}
    with pytest.raises(FlagError):
        dests_set_by(["--max-num"])  # ambiguous: --max-num-seqs, --max-num-batched-tokens, ...


def test_the_pipeline_short_flag_is_refused_as_a_managed_flag() -> None:
    """`-pp` is itself in the managed list (the plan sets pipeline parallelism), so the admission rule's
    Python form refuses it, naming the list."""
    problems = problems_for("--seed=1", "-pp", "2")
    assert [field for field, _ in problems] == ["spec.serving.extraArgs"]
    assert "-pp" in problems[0][1]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--seed", "abc"], "an integer"),
        (["--seed=3.5"], "an integer"),
        (["--max-logprobs", "many"], "an integer"),
        (["--gpu-memory-utilization", "lots"], "a number"),
        (["--num-gpu-blocks-override", "x"], "or None to leave it unset"),
        (["--kv-cache-memory-bytes=1.5K"], "K/M/G/T"),
        (["--override-generation-config", "{"], "a JSON value"),
        (["--hf-overrides", "{not json}"], "a valid JSON object when written in braces"),
    ],
)
def test_a_value_vllm_cannot_convert_is_refused_naming_flag_type_and_fix(
    extra: list[str], expected: str
) -> None:
    ((field, message),) = problems_for("--enforce-eager", *extra)
    assert field == "spec.serving.extraArgs[1]"
    flag = extra[0].split("=")[0]
    assert f"vLLM 0.29.0 refuses {' '.join(extra)!r}: argument {flag}: expects" in message
    assert expected in message and "change the value" in message


def test_values_of_the_recorded_type_pass() -> None:
    assert (
        problems_for(
            "--seed",
            "-1",  # a negative number is the value, as argparse reads it
            "--gpu-memory-utilization",
            "0.9",
            "--max-logprobs=1_000",
            "--num-gpu-blocks-override",
            "None",
            "--kv-cache-memory-bytes=2G",
            "--max-lora-rank",
            "08",  # int choices compare after conversion, as in vLLM
            "--hf-overrides",
            '{"architectures": ["LlamaForCausalLM"]}',
            "--override-generation-config",
            '{"temperature": 0.5}',
        )
        == []
    )


def test_derived_flags_convert_their_values_too() -> None:
    assert dests_set_by(["--max-num-seqs=128"]) == {"max_num_seqs"}
    assert dests_set_by(["--max-model-len", "auto"]) == {"max_model_len"}
    assert dests_set_by(["--max-num-batched-tokens", "8k"]) == {"max_num_batched_tokens"}
    with pytest.raises(FlagError, match="argument --max-num-seqs: expects an integer"):
        dests_set_by(["--max-num-seqs", "abc"])
    with pytest.raises(FlagError, match="argument --max-model-len: expects auto, -1, or an integer"):
        dests_set_by(["--max-model-len", "lots"])


def test_the_table_records_each_value_type_from_vllms_parser() -> None:
    types = {a["dest"]: (a.get("type"), a.get("optional", False)) for a in flag_table().actions}
    assert types["seed"] == ("int", False)
    assert types["gpu_memory_utilization"] == ("float", False)
    assert types["max_model_len"] == ("humanReadableIntOrAuto", False)
    assert types["num_gpu_blocks_override"] == ("int", True)
    assert types["compilation_config"] == ("unchecked", False)  # pydantic: left to vLLM
    assert types["moe_backend"] == ("foldedName", False)
    assert types["enforce_eager"] == (None, False)  # takes no value
    # vLLM 0.29 turns bool fields into --flag/--no-flag (BooleanOptionalAction): none parses a value
    assert not [a for a in flag_table().actions if a["takesValue"] and a.get("type") == "bool"]


def test_backend_names_are_folded_before_the_choice_check_as_vllm_folds_them() -> None:
    """--moe-backend and --linear-backend lower-case the value and read '-' as '_' first."""
    assert problems_for("--moe-backend", "FLASHINFER-CUTLASS", "--linear-backend=Marlin") == []
    ((field, message),) = problems_for("--moe-backend", "no-such-backend")
    assert field == "spec.serving.extraArgs[0]" and "invalid choice" in message


def test_an_unchecked_type_is_left_to_vllm() -> None:
    assert problems_for("--compilation-config", "{not json}") == []
