"""One model's figures from its sidecars' (one per slice): the rules of docs/cost-model.md, "Across replicas".

- $/hour: the sum (every slice is paid for);
- tokens/s on the cost basis: the sum over the slices (one whose vLLM does not answer yet counts none);
- $/Mtok: from those two sums, never the mean of per-slice $/Mtok (which would weigh an idle slice
  like a busy one); NaN when the summed rate is 0 or below ``cost.minTokensPerSecond``;
- break-even: from the summed $/hour, so it is the rate the whole model must serve;
- prefix-cache hit ratio: the slices' ratios weighted by their prompt tokens/s (a ratio of sums, since
  hits and queries are both counted in prompt tokens);
- p95 latency and TTFT: the largest slice p95, which is conservative: quantiles of different
  histograms cannot be averaged, and the worst slice is what some users see.

A slice whose sidecar is listed but could not be read (it hangs, resets, serves something that is
not a sidecar's exposition) still pays: its $/hour is taken from the plan's price of one slice, so it
never silently drops out of the sum and makes $/Mtok look cheaper. What it served is unknown, so the
traffic figures (tokens/s, $/Mtok, prefix-cache hit ratio, p95s) are unknown too: a sum or a maximum
over some of the slices is a bound, not the model's figure. Likewise for a slice whose vLLM answers
but whose sidecar has no window yet (it has just restarted): it may be serving. A slice whose vLLM
does not answer (still compiling) serves nothing, so it counts no tokens.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from datajax_operator.status.observations import SidecarFigures

NAN = math.nan


@dataclass(frozen=True)
class ModelFigures:
    """The model's figures, aggregated across its slices; NaN where unknown."""

    sidecars: int
    usd_per_hour: float
    tokens_per_second: float
    usd_per_million_tokens: float
    breakeven_tokens_per_second: float
    prefix_cache_hit_ratio: float
    p95_latency_seconds: float
    p95_ttft_seconds: float


def basis_tokens_per_second(figures: SidecarFigures, basis: str) -> float:
    """The slice's token rate on the cost basis (NaN while its sidecar has no window yet)."""
    if basis == "output":
        return figures.generation_tokens_per_second
    return figures.prompt_tokens_per_second + figures.generation_tokens_per_second


def _known(values: Sequence[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def _unmeasured(figures: SidecarFigures, basis: str) -> bool:
    """The slice's vLLM answers but its sidecar has no window yet: it may serve tokens nobody counted."""
    return figures.upstream_up and math.isnan(basis_tokens_per_second(figures, basis))


def aggregate(
    replicas: Sequence[SidecarFigures],
    *,
    basis: str,
    ceiling: float,
    min_tokens_per_second: float,
    unread: int = 0,
    slice_usd_per_hour: float = NAN,
) -> ModelFigures:
    """The rules above, over the sidecars that answered (at least one) and ``unread`` slices whose
    sidecar did not, each paying ``slice_usd_per_hour`` (the plan's price of one slice)."""
    usd_per_hour = math.fsum(r.usd_per_hour for r in replicas) + (
        unread * slice_usd_per_hour if unread else 0.0
    )
    if unread or any(_unmeasured(r, basis) for r in replicas):
        return ModelFigures(
            sidecars=len(replicas) + unread,
            usd_per_hour=usd_per_hour,
            tokens_per_second=NAN,
            usd_per_million_tokens=NAN,
            breakeven_tokens_per_second=usd_per_hour * 1e6 / (3600.0 * ceiling),
            prefix_cache_hit_ratio=NAN,
            p95_latency_seconds=NAN,
            p95_ttft_seconds=NAN,
        )
    rates = _known([basis_tokens_per_second(r, basis) for r in replicas])
    tokens = math.fsum(rates) if rates else NAN
    judged = not math.isnan(tokens) and tokens > 0 and tokens >= min_tokens_per_second
    weighted = [
        (r.prefix_cache_hit_ratio, r.prompt_tokens_per_second)
        for r in replicas
        if not math.isnan(r.prefix_cache_hit_ratio) and not math.isnan(r.prompt_tokens_per_second)
    ]
    prompt = math.fsum(w for _, w in weighted)
    e2e = _known([r.p95_e2e_latency_seconds for r in replicas])
    ttft = _known([r.p95_ttft_seconds for r in replicas])
    return ModelFigures(
        sidecars=len(replicas),
        usd_per_hour=usd_per_hour,
        tokens_per_second=tokens,
        usd_per_million_tokens=usd_per_hour / (tokens * 3600.0) * 1e6 if judged else NAN,
        breakeven_tokens_per_second=usd_per_hour * 1e6 / (3600.0 * ceiling),
        prefix_cache_hit_ratio=math.fsum(r * w for r, w in weighted) / prompt if prompt > 0 else NAN,
        p95_latency_seconds=max(e2e) if e2e else NAN,
        p95_ttft_seconds=max(ttft) if ttft else NAN,
    )
