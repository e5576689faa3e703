"""Property tests: explicit spec values always win; every derived value is one vLLM accepts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from datajax_operator.plan.wavespec import (
    FLAG_KV_CACHE_DTYPE,
    FLAG_MAX_NUM_BATCHED_TOKENS,
    FLAG_PREFIX_CACHING,
    MAX_DERIVED_BATCHED_TOKENS,
    KvBudget,
    NumericSummary,
    ServingInputs,
    WaveSpec,
    derive_serving_defaults,
    render_args,
    serving_findings,
    tpu_page_size,
)


@st.composite
def summaries(draw: st.DrawFn, high: int = 200_000) -> NumericSummary:
    points = sorted(draw(st.lists(st.integers(1, high), min_size=7, max_size=7)))
    lo, p25, p50, p75, p90, p99, hi = (float(p) for p in points)
    return NumericSummary(
        count=float(draw(st.integers(1, 10**6))), mean=p50, std=p75 - p25,
        min=lo, max=hi, p25=p25, p50=p50, p75=p75, p90=p90, p99=p99,
    )  # fmt: skip


@st.composite
def wavespecs(draw: st.DrawFn) -> WaveSpec | None:
    if draw(st.booleans()):
        return None
    rows = draw(st.integers(0, 10**6))
    depth = draw(st.integers(1, 10))
    distinct = draw(st.integers(0, min(rows, 16**depth)))
    return WaveSpec(
        pack_order=(), cohorts=(), extents=(), page_bits=20, row_count=rows, approx_bytes=None,
        key_column="k", prefix_len=depth, chunk_len_column="prompt_tokens",
        chunk_len=draw(st.none() | summaries()), window_column="output_tokens",
        window=draw(st.none() | summaries(high=32_768)), prefix_histogram=((depth, distinct),),
    )  # fmt: skip


budgets = st.none() | st.builds(
    KvBudget,
    hbm_bytes=st.integers(16 * 2**30, 256 * 16 * 2**30),
    weight_bytes=st.integers(0, 2 * 10**12),
    kv_bytes_per_token=st.integers(1024, 4 * 2**20),
    kv_dtype_bytes=st.sampled_from([1, 2, 4]),
)


@st.composite
def derived_inputs(draw: st.DrawFn) -> ServingInputs:
    return ServingInputs(
        max_model_len=draw(st.integers(256, 1_048_576)),
        max_num_seqs=draw(st.integers(1, 4096)),
        kv_budget=draw(budgets),
    )


@settings(max_examples=300, deadline=None)
@given(ws=wavespecs(), inputs=derived_inputs())
def test_derived_values_are_accepted_by_vllm_and_tpu_inference(
    ws: WaveSpec | None, inputs: ServingInputs
) -> None:
    decisions = {d.flag: d for d in derive_serving_defaults(ws, inputs)}
    chunk = decisions[FLAG_MAX_NUM_BATCHED_TOKENS].value
    assert isinstance(chunk, int) and not isinstance(chunk, bool)
    # vLLM SchedulerConfig: >= 1 and >= max_num_seqs (else it refuses to start), <= seqs * len (else warns).
    assert chunk >= max(1, inputs.max_num_seqs)
    assert chunk <= inputs.max_num_seqs * inputs.max_model_len
    # tpu-inference: a power-of-two token bucket >= 16, whole KV pages, no larger than the cap unless forced.
    assert chunk & (chunk - 1) == 0 and chunk >= 16
    page = tpu_page_size(inputs.max_model_len, inputs.max_num_seqs)
    assert chunk % page == 0
    assert chunk <= max(MAX_DERIVED_BATCHED_TOKENS, 2 * inputs.max_num_seqs, page)
    assert decisions[FLAG_KV_CACHE_DTYPE].value in {"auto", "fp8"}
    assert isinstance(decisions[FLAG_PREFIX_CACHING].value, bool)
    assert all(d.reason and "\n" not in d.reason for d in decisions.values())
    assert not [f for f in serving_findings(ws, inputs) if f.severity == "error"]


@settings(max_examples=300, deadline=None)
@given(
    ws=wavespecs(),
    base=derived_inputs(),
    prefix=st.booleans(),
    kv=st.sampled_from(["auto", "fp8", "fp8_e5m2", "bfloat16"]),
    data=st.data(),
)
def test_explicit_values_always_win(
    ws: WaveSpec | None, base: ServingInputs, prefix: bool, kv: str, data: st.DataObject
) -> None:
    chunk = data.draw(st.integers(base.max_num_seqs, base.max_num_seqs * base.max_model_len))
    inputs = ServingInputs(
        max_model_len=base.max_model_len, max_num_seqs=base.max_num_seqs, prefix_caching=prefix,
        max_num_batched_tokens=chunk, kv_cache_dtype=kv, kv_budget=base.kv_budget,
    )  # fmt: skip
    decisions = {d.flag: d for d in derive_serving_defaults(ws, inputs)}
    for flag, value in (
        (FLAG_PREFIX_CACHING, prefix),
        (FLAG_MAX_NUM_BATCHED_TOKENS, chunk),
        (FLAG_KV_CACHE_DTYPE, kv),
    ):
        assert decisions[flag].value == value and decisions[flag].source == "spec"
    args = render_args(list(decisions.values()))
    assert ("--enable-prefix-caching" in args) is prefix and (
        "--no-enable-prefix-caching" in args
    ) is not prefix
    assert f"--max-num-batched-tokens={chunk}" in args


@given(inputs=derived_inputs(), data=st.data())
def test_explicit_chunk_below_max_num_seqs_is_an_error_naming_the_field(
    inputs: ServingInputs, data: st.DataObject
) -> None:
    if inputs.max_num_seqs < 2:
        return
    chunk = data.draw(st.integers(1, inputs.max_num_seqs - 1))
    bad = ServingInputs(
        max_model_len=inputs.max_model_len, max_num_seqs=inputs.max_num_seqs, max_num_batched_tokens=chunk
    )
    errors = [f for f in serving_findings(None, bad) if f.severity == "error"]
    assert [f.field for f in errors] == ["spec.serving.chunkedPrefill.maxNumBatchedTokens"]
