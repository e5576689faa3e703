"""Window math: from two or more vLLM scrapes to cost, latency and prefix-cache figures (DESIGN §5).

Pure functions and frozen values, no I/O and no clock, so `serve` and `analyze` run the very same
arithmetic and tests can check it against hand-computed numbers.

Conventions, chosen to agree with what a Prometheus user would get from the same data:
- every series is its own counter for reset detection, as `increase()` treats it: a value lower than
  the previous one is a restart and the new value is the increase; a series first seen in the later
  scrape started from zero (vLLM creates its counters at zero when an engine starts);
- increases are then summed across series (the `engine` label, one value per data-parallel engine),
  and histogram buckets by their `le` bound, which is read from the scrape, never assumed;
- quantiles follow `histogram_quantile` over those bucket increases;
- a figure that cannot be known is NaN, never 0: no requests means no latency, not zero latency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from datajax_runtime.exposition import Exposition, ExpositionError, parse_labels

__all__ = [
    "ANALYZE_KEYS",
    "COUNTERS",
    "HISTOGRAMS",
    "Figures",
    "Increase",
    "Pricing",
    "Snapshot",
    "figures",
    "histogram_quantile",
    "increase",
    "snapshot",
]

ANALYZE_KEYS = (
    "window_seconds",
    "requests",
    "p95_e2e_latency_seconds",
    "p95_ttft_seconds",
    "prefix_cache_hit_ratio",
    "prompt_tokens_per_second",
    "generation_tokens_per_second",
    "usd_per_hour",
    "usd_per_million_tokens",
    "breakeven_tokens_per_second",
)
"""The `datajax-sidecar analyze -o json` keys, in order (DESIGN §6): the one list of them."""

PROMPT_TOKENS = "vllm:prompt_tokens_total"
GENERATION_TOKENS = "vllm:generation_tokens_total"
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"
E2E = "vllm:e2e_request_latency_seconds"
TTFT = "vllm:time_to_first_token_seconds"
ITL = "vllm:inter_token_latency_seconds"
COUNTERS = (PROMPT_TOKENS, GENERATION_TOKENS, PREFIX_QUERIES, PREFIX_HITS)
HISTOGRAMS = (E2E, TTFT, ITL)
NAN = math.nan

Basis = Literal["total", "output"]

# Raw label text of a bucket sample -> its upper bound; vLLM repeats the same label sets every scrape.
_LE_CACHE: dict[str, float] = {}


@dataclass(frozen=True)
class Snapshot:
    """What the window math needs from one scrape, keyed by raw label text per series.

    `buckets[h][labels] = (le, cumulative count)`; each bucket is its own series, as in Prometheus.
    """

    time: float
    counters: Mapping[str, Mapping[str, float]]
    buckets: Mapping[str, Mapping[str, tuple[float, float]]]


@dataclass(frozen=True)
class Increase:
    """Increases over an interval, already summed across series (and across `engine`)."""

    seconds: float
    counters: Mapping[str, float]
    buckets: Mapping[str, Mapping[float, float]]


@dataclass(frozen=True)
class Pricing:
    """What turns a token rate into dollars; the operator passes chips and price per chip-hour."""

    chips: int
    usd_per_chip_hour: float
    ceiling_usd_per_million_tokens: float = 3.0
    basis: Basis = "total"
    min_tokens_per_second: float = 1.0

    @property
    def usd_per_hour(self) -> float:
        return self.chips * self.usd_per_chip_hour

    @property
    def breakeven_tokens_per_second(self) -> float:
        """The token rate at which the slice costs exactly the ceiling per million tokens."""
        if self.ceiling_usd_per_million_tokens <= 0:
            return NAN
        return self.usd_per_hour * 1e6 / (3600.0 * self.ceiling_usd_per_million_tokens)


@dataclass(frozen=True)
class Figures:
    """Everything the sidecar exports for one window; NaN where the window cannot tell."""

    window_seconds: float
    requests: float
    requests_per_second: float
    p95_e2e_latency_seconds: float
    p95_ttft_seconds: float
    p95_itl_seconds: float
    prefix_cache_hit_ratio: float
    prompt_tokens_per_second: float
    generation_tokens_per_second: float
    usd_per_hour: float
    usd_per_million_tokens: float
    breakeven_tokens_per_second: float

    def to_json(self) -> dict[str, Any]:
        """The `analyze -o json` document: exactly the keys of DESIGN §6, NaN written as null."""
        out: dict[str, Any] = {}
        for key in ANALYZE_KEYS:
            value: float = getattr(self, key)
            out[key] = None if math.isnan(value) else value
        return out


def _bucket_bound(raw: str, name: str) -> float:
    bound = _LE_CACHE.get(raw)
    if bound is not None:
        return bound
    for label, value in parse_labels(raw):
        if label == "le":
            try:
                bound = float(value)
            except ValueError:
                raise ExpositionError(0, f"{name}_bucket has a non-numeric le={value!r}") from None
            if len(_LE_CACHE) > 20_000:
                _LE_CACHE.clear()
            _LE_CACHE[raw] = bound
            return bound
    raise ExpositionError(0, f"{name}_bucket sample without an le label: {name}_bucket{raw}")


def snapshot(exposition: Exposition, time: float) -> Snapshot:
    """Pick the series the window math needs out of one parsed scrape taken at `time` (seconds)."""
    counters = {name: dict(exposition.series(name)) for name in COUNTERS}
    buckets: dict[str, dict[str, tuple[float, float]]] = {}
    for name in HISTOGRAMS:
        rows = exposition.series(name + "_bucket")
        buckets[name] = {raw: (_bucket_bound(raw, name), value) for raw, value in rows}
    return Snapshot(
        time=time,
        counters={k: v for k, v in counters.items() if v},
        buckets={k: v for k, v in buckets.items() if v},
    )


def _series_increase(before: float | None, after: float) -> float:
    if before is None or after < before:
        return after
    return after - before


def increase(older: Snapshot, newer: Snapshot) -> Increase:
    """Reset-aware increase of every series from `older` to `newer`, summed across series."""
    counters: dict[str, float] = {}
    for name, series in newer.counters.items():
        previous = older.counters.get(name, {})
        counters[name] = sum(_series_increase(previous.get(key), value) for key, value in series.items())
    buckets: dict[str, dict[float, float]] = {}
    for name, bucket_series in newer.buckets.items():
        previous_buckets = older.buckets.get(name, {})
        by_bound: dict[float, float] = {}
        for key, (bound, value) in bucket_series.items():
            before = previous_buckets.get(key)
            grown = _series_increase(None if before is None else before[1], value)
            by_bound[bound] = by_bound.get(bound, 0.0) + grown
        buckets[name] = by_bound
    return Increase(seconds=newer.time - older.time, counters=counters, buckets=buckets)


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """Prometheus `histogram_quantile` over cumulative bucket counts keyed by upper bound.

    Linear interpolation inside the bucket the rank falls in, lower bound 0 for the first bucket,
    the largest finite bound when the rank falls in +Inf; NaN without a +Inf bucket, with fewer than
    two buckets, or with no observations. Non-monotonic counts (possible when buckets of different
    scrapes are combined) are evened out upwards, as Prometheus does.
    """
    if math.isnan(q):
        return NAN
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    bounds = sorted(buckets)
    if len(bounds) < 2 or not math.isinf(bounds[-1]) or bounds[-1] < 0:
        return NAN
    counts: list[float] = []
    running_max = 0.0
    for bound in bounds:
        running_max = max(running_max, buckets[bound])
        counts.append(running_max)
    observations = counts[-1]
    if observations <= 0 or math.isnan(observations):
        return NAN
    rank = q * observations
    index = next(i for i, count in enumerate(counts) if count >= rank)
    if index == len(bounds) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start = 0.0 if index == 0 else bounds[index - 1]
    below = 0.0 if index == 0 else counts[index - 1]
    in_bucket = counts[index] - below
    if in_bucket <= 0:
        return bounds[index]
    # min(): float rounding of the interpolation must not step past the bucket's upper bound.
    return min(bounds[index], start + (bounds[index] - start) * ((rank - below) / in_bucket))


def _rate(window: Increase, name: str) -> float:
    value = window.counters.get(name)
    return NAN if value is None else value / window.seconds


def figures(window: Increase | None, pricing: Pricing) -> Figures:
    """The exported figures for a window; `None` (fewer than two scrapes) gives only the prices."""
    usd_per_hour = pricing.usd_per_hour
    breakeven = pricing.breakeven_tokens_per_second
    if window is None or window.seconds <= 0:
        return Figures(0.0, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, usd_per_hour, NAN, breakeven)
    e2e = window.buckets.get(E2E)
    requests = e2e.get(math.inf, NAN) if e2e else NAN
    queries = window.counters.get(PREFIX_QUERIES)
    hits = window.counters.get(PREFIX_HITS)
    hit_ratio = hits / queries if queries and hits is not None else NAN
    prompt = _rate(window, PROMPT_TOKENS)
    generation = _rate(window, GENERATION_TOKENS)
    tokens_per_second = generation if pricing.basis == "output" else prompt + generation
    judged = tokens_per_second > 0 and tokens_per_second >= pricing.min_tokens_per_second
    if math.isnan(tokens_per_second) or not judged:
        usd_per_million = NAN
    else:
        usd_per_million = usd_per_hour / (tokens_per_second * 3600.0) * 1e6
    return Figures(
        window_seconds=window.seconds,
        requests=requests,
        requests_per_second=requests / window.seconds,
        p95_e2e_latency_seconds=histogram_quantile(0.95, e2e or {}),
        p95_ttft_seconds=histogram_quantile(0.95, window.buckets.get(TTFT, {})),
        p95_itl_seconds=histogram_quantile(0.95, window.buckets.get(ITL, {})),
        prefix_cache_hit_ratio=hit_ratio,
        prompt_tokens_per_second=prompt,
        generation_tokens_per_second=generation,
        usd_per_hour=usd_per_hour,
        usd_per_million_tokens=usd_per_million,
        breakeven_tokens_per_second=breakeven,
    )
