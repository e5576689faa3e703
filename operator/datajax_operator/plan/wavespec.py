"""Wave-spec tuning hooks: DataJAX exporter summaries become vLLM / RPA v3 serving defaults.

DataJAX's ``datajax-export-wavespec`` (``datajax.io.exporter.export_wave_spec``) writes one JSON object:

* ``pack_order`` - column names by descending usage;
* ``cohorts`` - ``{prefix, count, bytes}`` for the top-k hashed-key prefixes (hex digits of a 64-bit hash
  of the key column, truncated to ``meta.prefix_len``);
* ``extents`` - ``{start_page, npages}`` runs of hashed-key pages (``meta.page_bits`` bits per page);
* ``meta`` - ``page_bits``, ``row_count``, ``approx_bytes`` and, from newer exporters, ``key_column``,
  ``size_column``, ``prefix_len``, ``chunk_len_column``/``chunk_len_summary``,
  ``window_column``/``window_summary`` (each summary: count, mean, std, min, max, p25, p50, p75, p90,
  p99; ``{}`` when the column was absent);
* ``prefix_histogram`` - distinct hashed-key prefixes per depth ``"1"..prefix_len`` (newer exporters).

Serving convention (documented in docs/wavespec.md): the key column identifies the shared prompt prefix
(system prompt, document, conversation) of a request, ``chunk_len`` is the prompt length in tokens and
``window`` the number of generated tokens. Older exports without histogram or summaries still parse; the
decisions they cannot support fall back to the spec defaults and say so.

Everything here is pure: it reads numbers and returns decisions, each with a one-line reason, so that
``datajax-operator plan`` can print why every flag has its value. Explicit spec values always win.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from datajax_operator.api.errors import field_path
from datajax_operator.plan.problems import Problem

#: Where a serving value came from: the user's spec, the wave spec, or the built-in default.
Source = Literal["spec", "wavespec", "default"]

HEX_DIGIT_BUCKETS = 16
PERCENTILE_ORDER = ("min", "p25", "p50", "p75", "p90", "p99", "max")

#: Below this share of requests reusing an earlier request's prefix, block hashing buys nothing.
PREFIX_REUSE_THRESHOLD = 0.05
#: Cohort prefixes must have this many buckets per request for collisions to stay under 1% of requests.
COHORT_DEPTH_FACTOR = 100
#: vLLM's `vllm serve` default chunk where no TPU generation is known (vllm/engine/arg_utils.py
#: ``get_batch_defaults``, OPENAI_API_SERVER); on TPU the generation's own default (the TPU catalog's
#: ``vllmDefaultMaxNumBatchedTokens``: v6e 1024, v5e 512, v5p 256) comes in through ``ServingInputs``.
DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048
#: Larger prefill chunks stall running decodes for a whole step (inter-token latency); cap the derivation.
MAX_DERIVED_BATCHED_TOKENS = 8192
#: tpu-inference compiles token buckets as powers of two starting here (``MIN_TOKEN_BUCKET``).
MIN_TOKEN_BUCKET = 16
#: Share of slice HBM vLLM may use (``--gpu-memory-utilization`` default) - the DESIGN §4 fit rule.
HBM_UTILIZATION = 0.9
GIB = 1024**3

FLAG_PREFIX_CACHING = "--enable-prefix-caching"
FLAG_CHUNKED_PREFILL = "--enable-chunked-prefill"
FLAG_MAX_NUM_BATCHED_TOKENS = "--max-num-batched-tokens"
FLAG_MAX_MODEL_LEN = "--max-model-len"
FLAG_KV_CACHE_DTYPE = "--kv-cache-dtype"

FIELD_PREFIX_CACHING = "spec.serving.prefixCaching"
FIELD_MAX_NUM_BATCHED_TOKENS = "spec.serving.chunkedPrefill.maxNumBatchedTokens"
FIELD_MAX_NUM_SEQS = "spec.serving.maxNumSeqs"
FIELD_MAX_MODEL_LEN = "spec.model.maxModelLen"
FIELD_KV_CACHE_DTYPE = "spec.serving.kvCacheDtype"


class WaveSpecError(ValueError):
    """The document is not a usable wave spec; ``problems`` names every bad field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class _Export(BaseModel):
    """A part of the exporter's JSON: unknown keys are ignored (a newer exporter may add some)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


Count = Annotated[int, Field(ge=0)]
Tokens = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class NumericSummary(_Export):
    """``summarise_numeric_column`` output: count, moments, extremes and five percentiles (tokens)."""

    count: Annotated[float, Field(ge=1, allow_inf_nan=False)]
    mean: Tokens
    std: Tokens
    min: Tokens
    max: Tokens
    p25: Tokens
    p50: Tokens
    p75: Tokens
    p90: Tokens
    p99: Tokens

    @model_validator(mode="after")
    def _ordered(self) -> NumericSummary:
        ordered = [getattr(self, k) for k in PERCENTILE_ORDER]
        if any(a > b for a, b in itertools.pairwise(ordered)):
            raise ValueError("percentiles must not decrease: min <= p25 <= p50 <= p75 <= p90 <= p99 <= max")
        return self


class Cohort(_Export):
    prefix: str
    count: Annotated[int, Field(ge=1)]
    bytes: Count | None = None


class Extent(_Export):
    start_page: Count
    npages: Annotated[int, Field(ge=1)]


def _absent_summary(value: Any) -> Any:
    """The exporter writes ``{}`` for a summary whose column was absent."""
    return None if value == {} else value


Summary = Annotated[NumericSummary | None, BeforeValidator(_absent_summary)]


class _Meta(_Export):
    row_count: Count
    page_bits: Count
    approx_bytes: Count | None = None
    key_column: str | None = None
    prefix_len: Annotated[int, Field(ge=1)] | None = None
    chunk_len_column: str | None = None
    chunk_len_summary: Summary = None
    window_column: str | None = None
    window_summary: Summary = None


class _Document(_Export):
    """The whole ``datajax-export-wavespec`` document, as pydantic validates it."""

    pack_order: list[str] = []
    cohorts: list[Cohort] = []
    extents: list[Extent] = []
    meta: _Meta
    prefix_histogram: dict[Annotated[str, Field(pattern=r"^[1-9][0-9]*$")], Count] = {}

    @field_validator("prefix_histogram")
    @classmethod
    def _fits_and_grows(cls, histogram: dict[str, int]) -> dict[str, int]:
        ordered = sorted((int(depth), distinct) for depth, distinct in histogram.items())
        for depth, distinct in ordered:
            if distinct > HEX_DIGIT_BUCKETS**depth:
                raise ValueError(
                    f"depth {depth}: {distinct} distinct prefixes cannot fit in {depth} hex digits"
                )
        if any(a[1] > b[1] for a, b in itertools.pairwise(ordered)):
            raise ValueError("distinct prefixes must not decrease with depth")
        return histogram

    @model_validator(mode="after")
    def _within_rows(self) -> _Document:
        rows = self.meta.row_count
        over = [depth for depth, distinct in self.prefix_histogram.items() if distinct > rows]
        if over:
            raise ValueError(
                f"prefix_histogram: distinct prefixes at depth {', '.join(over)} exceed meta.row_count {rows}"
            )
        if sum(c.count for c in self.cohorts) > rows:
            raise ValueError(f"cohorts: counts sum past meta.row_count {rows}")
        return self


@dataclass(frozen=True)
class WaveSpec:
    """A parsed ``datajax-export-wavespec`` document; absent newer fields are ``None``/empty."""

    pack_order: tuple[str, ...]
    cohorts: tuple[Cohort, ...]
    extents: tuple[Extent, ...]
    page_bits: int
    row_count: int
    approx_bytes: int | None
    key_column: str | None
    prefix_len: int | None
    chunk_len_column: str | None
    chunk_len: NumericSummary | None
    window_column: str | None
    window: NumericSummary | None
    #: (depth, distinct prefixes at that depth), depth ascending.
    prefix_histogram: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class KvBudget:
    """What sizing the KV cache needs; only known when the spec gives model shape hints."""

    hbm_bytes: int  # whole slice
    weight_bytes: int
    kv_bytes_per_token: int  # at the model dtype (``--kv-cache-dtype auto``)
    kv_dtype_bytes: int  # bytes per element of the model dtype (2 for bf16)


@dataclass(frozen=True)
class ServingInputs:
    """The spec values the serving decisions read; ``None`` means "not set explicitly"."""

    max_model_len: int
    max_num_seqs: int = 256
    prefix_caching: bool | None = None
    max_num_batched_tokens: int | None = None
    kv_cache_dtype: str | None = None
    kv_budget: KvBudget | None = None
    default_max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS
    """What vLLM itself would use on this hardware when the flag is not given."""
    generation: str | None = None


@dataclass(frozen=True)
class Decision:
    """One vLLM flag, its value, and the one-line reason ``plan`` prints for it."""

    flag: str
    value: bool | int | str
    reason: str
    source: Source


@dataclass(frozen=True)
class PrefixReuse:
    """Estimated share of requests whose prefix key was already seen, and how it was measured."""

    share: float
    distinct_keys: float
    depth: int
    lower_bound: bool


# --------------------------------------------------------------------------------------------- parsing


def _problems(error: ValidationError) -> list[Problem]:
    """pydantic's errors as problems on ``waveSpec.<path>`` (a dict key's error names the key; a check
    across fields names them in its message)."""
    problems = []
    for e in error.errors():
        loc = [part for part in e["loc"] if part != "[key]"]
        field = f"waveSpec.{field_path(loc)}" if loc else "waveSpec"
        problems.append(Problem(field, e["msg"].removeprefix("Value error, ")))
    return problems


def parse_wavespec(document: Mapping[str, Any] | str | bytes) -> WaveSpec:
    """Parse the exporter's JSON (text or decoded), raising ``WaveSpecError`` naming each bad field."""

    if isinstance(document, str | bytes):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise WaveSpecError([Problem("waveSpec", f"not JSON: {exc}")]) from exc
    if not isinstance(document, Mapping):
        raise WaveSpecError([Problem("waveSpec", "expected a JSON object")])
    try:
        doc = _Document.model_validate(document)
    except ValidationError as err:
        raise WaveSpecError(_problems(err)) from None
    meta = doc.meta
    return WaveSpec(
        pack_order=tuple(doc.pack_order),
        cohorts=tuple(doc.cohorts),
        extents=tuple(doc.extents),
        page_bits=meta.page_bits,
        row_count=meta.row_count,
        approx_bytes=meta.approx_bytes,
        key_column=meta.key_column,
        prefix_len=meta.prefix_len,
        chunk_len_column=meta.chunk_len_column,
        chunk_len=meta.chunk_len_summary,
        window_column=meta.window_column,
        window=meta.window_summary,
        prefix_histogram=tuple(
            sorted((int(depth), distinct) for depth, distinct in doc.prefix_histogram.items())
        ),
    )


# ----------------------------------------------------------------------------------------- estimates


def prefix_reuse(ws: WaveSpec) -> PrefixReuse | None:
    """Share of requests that repeat an earlier request's prefix key, or ``None`` when unknowable.

    The histogram counts distinct *hashed* prefixes, so at shallow depths unrelated keys collide. Linear
    counting undoes that: with ``B = 16**depth`` buckets and ``u`` occupied, the number of distinct keys is
    ``ln(1 - u/B) / ln(1 - 1/B)``. The deepest unsaturated depth is the most precise. Older exports have
    no histogram; their cohorts give a lower bound (every request in a cohort beyond the first repeats it)
    only when the prefixes are deep enough that distinct keys seldom share one (``16**len >= 100 * rows``
    keeps hash collisions under 1% of requests).
    """

    n = ws.row_count
    if n == 0:
        return None
    for depth, distinct in reversed(ws.prefix_histogram):
        buckets = float(HEX_DIGIT_BUCKETS**depth)
        if distinct >= buckets:
            continue  # saturated: every bucket hit, the depth says nothing
        keys = math.log1p(-distinct / buckets) / math.log1p(-1.0 / buckets)
        keys = min(max(keys, float(distinct)), float(n))
        return PrefixReuse(share=1.0 - keys / n, distinct_keys=keys, depth=depth, lower_bound=False)
    depth = min((len(c.prefix) for c in ws.cohorts), default=0)
    if ws.cohorts and HEX_DIGIT_BUCKETS**depth >= COHORT_DEPTH_FACTOR * n:
        repeats = sum(c.count - 1 for c in ws.cohorts)
        return PrefixReuse(share=repeats / n, distinct_keys=float(n - repeats), depth=depth, lower_bound=True)
    return None


def tpu_page_size(max_model_len: int, max_num_seqs: int) -> int:
    """The KV page (block) size tpu-inference picks when the user sets none.

    It splits the context into about 16 pages kept within [16, 256] (16 above 8192 tokens), then raises the
    page so the block tables of ``max_num_seqs`` requests fit in half of the 1 MiB SMEM.
    """

    page = 16 if max_model_len > 8192 else min(max(_next_pow2(max_model_len) // 16, 16), 256)
    pages_per_request = max(1, 1024 * 1024 // 2 // max_num_seqs // 4)
    smem_min = _next_pow2(-(-max_model_len // pages_per_request))
    return max(page, smem_min)


def _next_pow2(x: int) -> int:
    return 1 if x <= 1 else 1 << (x - 1).bit_length()


def _prev_pow2(x: int) -> int:
    return 1 << (max(x, 1).bit_length() - 1)


def batched_tokens_bounds(inputs: ServingInputs) -> tuple[int, int]:
    """The range a derived ``--max-num-batched-tokens`` must stay in, both ends powers of two.

    vLLM refuses to start below ``max_num_seqs`` and warns above ``max_num_seqs * max_model_len``;
    tpu-inference pads the token count to a power-of-two bucket of at least 16 and stores KV in pages.
    """

    page = tpu_page_size(inputs.max_model_len, inputs.max_num_seqs)
    low = _next_pow2(max(inputs.max_num_seqs, page, MIN_TOKEN_BUCKET))
    high = max(low, _prev_pow2(min(MAX_DERIVED_BATCHED_TOKENS, inputs.max_num_seqs * inputs.max_model_len)))
    return low, high


# ----------------------------------------------------------------------------------------- decisions


def derive_serving_defaults(wavespec: WaveSpec | None, inputs: ServingInputs) -> list[Decision]:
    """Every serving flag the wave spec can inform, in a stable order, each with its reason."""

    return [
        _prefix_caching(wavespec, inputs),
        _chunked_prefill(wavespec, inputs),
        _max_num_batched_tokens(wavespec, inputs),
        _max_model_len(wavespec, inputs),
        _kv_cache_dtype(wavespec, inputs),
    ]


def _prefix_caching(ws: WaveSpec | None, inputs: ServingInputs) -> Decision:
    if inputs.prefix_caching is not None:
        return Decision(FLAG_PREFIX_CACHING, inputs.prefix_caching, f"set in {FIELD_PREFIX_CACHING}", "spec")
    reuse = prefix_reuse(ws) if ws is not None else None
    if reuse is None:
        why = "no wave spec" if ws is None else "the wave spec has no prefix histogram or cohorts"
        return Decision(FLAG_PREFIX_CACHING, True, f"{why}; vLLM's default (on) kept", "default")
    at_least = "at least " if reuse.lower_bound else ""
    measured = (
        f"{at_least}{reuse.share:.0%} of {ws.row_count if ws else 0:,} requests reuse an earlier prefix "
        f"(~{reuse.distinct_keys:,.0f} distinct keys at depth {reuse.depth})"
    )
    if reuse.share >= PREFIX_REUSE_THRESHOLD:
        return Decision(
            FLAG_PREFIX_CACHING, True, f"{measured}: cached KV pages skip their prefill", "wavespec"
        )
    return Decision(
        FLAG_PREFIX_CACHING,
        False,
        f"{measured}, below {PREFIX_REUSE_THRESHOLD:.0%}: hashing every block would almost never hit",
        "wavespec",
    )


def _chunked_prefill(ws: WaveSpec | None, inputs: ServingInputs) -> Decision:
    chunk = _batched_tokens_value(ws, inputs)
    if ws is None or ws.chunk_len is None:
        reason = "RPA v3 baseline: long prompts are prefilled in chunks between decode steps"
        return Decision(FLAG_CHUNKED_PREFILL, True, reason, "default")
    p99 = ws.chunk_len.p99
    if p99 > chunk:
        reason = (
            f"p99 prompt {p99:,.0f} tokens > chunk {chunk:,}: long prompts are split between decode steps"
        )
    else:
        reason = f"p99 prompt {p99:,.0f} tokens fits one {chunk:,}-token chunk; only outliers are split"
    return Decision(FLAG_CHUNKED_PREFILL, True, reason, "wavespec")


def _batched_tokens_value(ws: WaveSpec | None, inputs: ServingInputs) -> int:
    return int(_max_num_batched_tokens(ws, inputs).value)


def _max_num_batched_tokens(ws: WaveSpec | None, inputs: ServingInputs) -> Decision:
    flag = FLAG_MAX_NUM_BATCHED_TOKENS
    if inputs.max_num_batched_tokens is not None:
        return Decision(flag, inputs.max_num_batched_tokens, f"set in {FIELD_MAX_NUM_BATCHED_TOKENS}", "spec")
    low, high = batched_tokens_bounds(inputs)
    source: Source
    if ws is None or ws.chunk_len is None:
        target, source = inputs.default_max_num_batched_tokens, "default"
        on = f" on {inputs.generation}" if inputs.generation else ""
        basis = (
            f"no prompt-length summary: vLLM's `vllm serve` default{on} {target:,} (vllm/engine/arg_utils.py)"
        )
    else:
        target, source = math.ceil(ws.chunk_len.p90), "wavespec"
        basis = f"p90 prompt {target:,} tokens prefills in one step"
    value = min(max(_next_pow2(target), low), high)
    if value == target:
        return Decision(flag, value, basis, source)
    if value == low and _next_pow2(target) < low:
        bound = f"raised to {low:,} (>= max-num-seqs {inputs.max_num_seqs} and one KV page)"
    elif value == high and _next_pow2(target) > high:
        bound = f"capped at {high:,} so a prefill step does not stall running decodes"
    else:
        bound = f"rounded up to the {value:,}-token compile bucket"
    return Decision(flag, value, f"{basis}; {bound}", source)


def _max_model_len(ws: WaveSpec | None, inputs: ServingInputs) -> Decision:
    flag, limit = FLAG_MAX_MODEL_LEN, inputs.max_model_len
    need = _p99_request_tokens(ws)
    if need is None:
        return Decision(flag, limit, f"from {FIELD_MAX_MODEL_LEN}; no prompt-length summary to check", "spec")
    prompt, output = need
    verdict = "fits" if prompt + output <= limit else "EXCEEDS"
    reason = f"from {FIELD_MAX_MODEL_LEN}; p99 prompt {prompt:,} + p99 output {output:,} {verdict} {limit:,}"
    return Decision(flag, limit, reason, "spec")


def _p99_request_tokens(ws: WaveSpec | None) -> tuple[int, int] | None:
    if ws is None or ws.chunk_len is None:
        return None
    output = math.ceil(ws.window.p99) if ws.window is not None else 0
    return math.ceil(ws.chunk_len.p99), output


def _kv_cache_dtype(ws: WaveSpec | None, inputs: ServingInputs) -> Decision:
    flag = FLAG_KV_CACHE_DTYPE
    if inputs.kv_cache_dtype is not None:
        return Decision(flag, inputs.kv_cache_dtype, f"set in {FIELD_KV_CACHE_DTYPE}", "spec")
    budget = inputs.kv_budget
    if budget is None:
        return Decision(
            flag, "auto", "no model shape hints to size the KV cache; model dtype kept", "default"
        )
    if ws is None or ws.chunk_len is None:
        return Decision(
            flag, "auto", "no prompt-length summary to size the KV cache; model dtype kept", "default"
        )
    if budget.kv_dtype_bytes <= 1:
        return Decision(flag, "auto", "the model dtype is already one byte per element", "default")
    tokens = math.ceil(ws.chunk_len.p90) + (math.ceil(ws.window.p90) if ws.window is not None else 0)
    demand = inputs.max_num_seqs * tokens * budget.kv_bytes_per_token
    free = HBM_UTILIZATION * budget.hbm_bytes - budget.weight_bytes
    sizing = (
        f"KV for {inputs.max_num_seqs} seqs x {tokens:,} p90 tokens = {demand / GIB:,.1f} GiB "
        f"vs {max(free, 0.0) / GIB:,.1f} GiB free HBM"
    )
    if demand <= free:
        return Decision(flag, "auto", f"{sizing}: fits at the model dtype", "wavespec")
    fp8 = demand / budget.kv_dtype_bytes
    tail = "fits" if fp8 <= free else "still over, vLLM will queue requests"
    return Decision(
        flag,
        "fp8",
        f"{sizing}: KV memory is the bottleneck; fp8 needs {fp8 / GIB:,.1f} GiB, {tail}",
        "wavespec",
    )


# ----------------------------------------------------------------------------------- checks and args


def serving_findings(wavespec: WaveSpec | None, inputs: ServingInputs) -> list[Problem]:
    """Values vLLM would refuse (errors) or that would reject real traffic (warnings), naming the field."""

    findings: list[Problem] = []
    chunk = inputs.max_num_batched_tokens
    if chunk is not None and chunk < inputs.max_num_seqs:
        findings.append(
            Problem(
                FIELD_MAX_NUM_BATCHED_TOKENS,
                f"{chunk} is below {FIELD_MAX_NUM_SEQS} {inputs.max_num_seqs}: vLLM refuses to start",
            )
        )
    need = _p99_request_tokens(wavespec)
    if need is not None and sum(need) > inputs.max_model_len:
        prompt, output = need
        findings.append(
            Problem(
                FIELD_MAX_MODEL_LEN,
                f"p99 prompt {prompt:,} + p99 output {output:,} = {prompt + output:,} tokens exceeds "
                f"{inputs.max_model_len:,}: about 1% of requests would be rejected or truncated",
                "warning",
            )
        )
    return findings


def render_args(decisions: Sequence[Decision]) -> list[str]:
    """``--flag=value`` tokens for the decisions, in order (booleans use vLLM's ``--no-`` form)."""

    return [
        (d.flag if d.value else "--no-" + d.flag.removeprefix("--"))
        if isinstance(d.value, bool)
        else f"{d.flag}={d.value}"
        for d in decisions
    ]
