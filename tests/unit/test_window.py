"""Window math against the real vLLM 0.32.0 scrapes (hand-computed) and by property tests."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datajax_runtime.cli import analyze
from datajax_runtime.exposition import parse
from datajax_runtime.ring import ScrapeRing
from datajax_runtime.window import Figures, Pricing, figures, histogram_quantile, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vllm_fixtures import readme, scrape_text, scrape_time

PRICING = Pricing(chips=8, usd_per_chip_hour=2.7, ceiling_usd_per_million_tokens=3.0)


def window_between(first: int, last: int, pricing: Pricing = PRICING) -> Figures:
    """Every scrape from `first` to `last` through the ring, at the times vLLM's scrapes were taken."""
    ring = ScrapeRing(window_seconds=3600)
    for index in range(first, last + 1):
        ring.add(snapshot(parse(scrape_text(index)), scrape_time(index)))
    return figures(ring.window(), pricing)


# Hand-computed from the bucket counts of the fixture files (increase = later count - earlier count,
# rank = 0.95 * observations, interpolate inside the first bucket whose cumulative count >= rank).
EXPECTED = {
    (0, 1): {
        "requests": 60,
        # e2e: all 60 in le=0.3; rank 57 -> 0 + 0.3 * 57/60
        "e2e": 0.3 * 57 / 60,
        # ttft cumulative: 0.01:9 0.02:56 0.04:60; rank 57 -> 0.02 + 0.02 * (57-56)/(60-56)
        "ttft": 0.02 + 0.02 * (57 - 56) / (60 - 56),
        # itl cumulative: 0.01:1377 0.025:1380; rank 0.95*1380 = 1311 -> 0.01 * 1311/1377
        "itl": 0.01 * 1311 / 1377,
        "prompt": 5570,
        "generation": 1440,
        # queries 5570, hits 0: prompts shorter than one KV block
        "hit_ratio": 0 / 5570,
    },
    (1, 2): {
        "requests": 80,
        # e2e: 140-60 = 80, all in le=0.3; rank 76 -> 0.3 * 76/80
        "e2e": 0.3 * 76 / 80,
        # ttft: 0.01: 18-9=9, 0.02: 131-56=75, 0.04: 140-60=80; rank 76 -> 0.02 + 0.02 * (76-75)/(80-75)
        "ttft": 0.02 + 0.02 * (76 - 75) / (80 - 75),
        # itl: 0.01: 3186-1377=1809 of 3220-1380=1840; rank 1748 -> 0.01 * 1748/1809
        "itl": 0.01 * 1748 / 1809,
        "prompt": 29640 - 5570,
        "generation": 3360 - 1440,
        "hit_ratio": (20224 - 0) / (29640 - 5570),
    },
    (2, 3): {
        "requests": 96,
        # e2e: 0.3: 177-140=37, 0.5: 203-140=63, 0.8: 235-140=95, 1.0: 96;
        # rank 91.2 -> 0.5 + 0.3 * (91.2-63)/(95-63)
        "e2e": 0.5 + 0.3 * (91.2 - 63) / (95 - 63),
        # ttft: 0.01: 38, 0.02: 79, 0.04: 88, 0.06: 96; rank 91.2 -> 0.04 + 0.02 * (91.2-88)/(96-88)
        "ttft": 0.04 + 0.02 * (91.2 - 88) / (96 - 88),
        # itl: 0.01: 12643-3186=9457 of 12724-3220=9504; rank 9028.8 -> 0.01 * 9028.8/9457
        "itl": 0.01 * 9028.8 / 9457,
        "prompt": 58526 - 29640,
        "generation": 12960 - 3360,
        "hit_ratio": (44800 - 20224) / (58526 - 29640),
    },
    (0, 3): {
        "requests": 236,
        # e2e: 0.3:177 0.5:203 0.8:235 1.0:236; rank 224.2 -> 0.5 + 0.3 * (224.2-203)/(235-203)
        "e2e": 0.5 + 0.3 * (224.2 - 203) / (235 - 203),
        # ttft: 0.01:56 0.02:210 0.04:228 0.06:236; rank 224.2 -> 0.02 + 0.02 * (224.2-210)/(228-210)
        "ttft": 0.02 + 0.02 * (224.2 - 210) / (228 - 210),
        # itl: 0.01:12643 of 12724; rank 12087.8 -> 0.01 * 12087.8/12643
        "itl": 0.01 * 12087.8 / 12643,
        "prompt": 58526,
        "generation": 12960,
        "hit_ratio": 44800 / 58526,
    },
}


@pytest.mark.parametrize("pair", list(EXPECTED))
def test_window_matches_hand_computed_values(pair: tuple[int, int]) -> None:
    first, last = pair
    want = EXPECTED[pair]
    seconds = scrape_time(last) - scrape_time(first)
    got = window_between(first, last)
    assert got.window_seconds == pytest.approx(seconds)
    assert got.requests == want["requests"]
    assert got.requests_per_second == pytest.approx(want["requests"] / seconds)
    assert got.p95_e2e_latency_seconds == pytest.approx(want["e2e"])
    assert got.p95_ttft_seconds == pytest.approx(want["ttft"])
    assert got.p95_itl_seconds == pytest.approx(want["itl"])
    assert got.prefix_cache_hit_ratio == pytest.approx(want["hit_ratio"])
    assert got.prompt_tokens_per_second == pytest.approx(want["prompt"] / seconds)
    assert got.generation_tokens_per_second == pytest.approx(want["generation"] / seconds)
    # 8 chips x $2.70 = $21.60/h; at a $3/Mtok ceiling that is 21.6e6 / (3600 * 3) = 2000 tokens/s.
    assert got.usd_per_hour == pytest.approx(21.6)
    assert got.breakeven_tokens_per_second == pytest.approx(2000.0)
    tokens_per_second = (want["prompt"] + want["generation"]) / seconds
    assert got.usd_per_million_tokens == pytest.approx(21.6 / (tokens_per_second * 3600) * 1e6)


@pytest.mark.parametrize("pair", [(0, 1), (1, 2), (2, 3)])
def test_window_agrees_with_the_load_generator(pair: tuple[int, int]) -> None:
    """Token totals match the client exactly; the client's p95 lies in the bucket of ours."""
    first, last = pair
    client = readme()["traffic_between"][f"scrape-{first}..scrape-{last}"]["client_side"]
    got = window_between(first, last)
    seconds = got.window_seconds
    assert round(got.prompt_tokens_per_second * seconds) == client["prompt_tokens"]
    assert round(got.generation_tokens_per_second * seconds) == client["completion_tokens"]
    assert got.requests == client["n"]
    bounds = [0.0, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0]  # vLLM's e2e buckets, read from the fixture
    upper = next(b for b in bounds if got.p95_e2e_latency_seconds <= b)
    lower = bounds[bounds.index(upper) - 1]
    assert lower <= client["p95"] <= upper


def test_output_basis_and_minimum_rate() -> None:
    seconds = scrape_time(3) - scrape_time(2)
    output = window_between(2, 3, Pricing(8, 2.7, basis="output"))
    # generation only: 9600 tokens over the window
    assert output.usd_per_million_tokens == pytest.approx(21.6 / (9600 / seconds * 3600) * 1e6)
    strict = window_between(2, 3, Pricing(8, 2.7, min_tokens_per_second=10_000))
    assert math.isnan(strict.usd_per_million_tokens)  # ~7032 tokens/s is below 10000: not judged


def test_analyze_is_the_serve_path() -> None:
    seconds = scrape_time(3) - scrape_time(2)
    assert analyze(scrape_text(2), scrape_text(3), seconds, PRICING) == window_between(2, 3)


def test_single_scrape_and_idle_windows_are_nan_not_zero() -> None:
    lone = ScrapeRing(600)
    lone.add(snapshot(parse(scrape_text(3)), 0.0))
    only_prices = figures(lone.window(), PRICING)
    assert only_prices.usd_per_hour == pytest.approx(21.6)
    assert math.isnan(only_prices.p95_e2e_latency_seconds)
    assert math.isnan(only_prices.requests)
    idle = analyze(scrape_text(3), scrape_text(3), 5.0, PRICING)  # no traffic between the two
    assert idle.requests == 0
    assert math.isnan(idle.p95_e2e_latency_seconds)
    assert math.isnan(idle.p95_ttft_seconds)
    assert math.isnan(idle.prefix_cache_hit_ratio)
    assert idle.prompt_tokens_per_second == 0
    assert math.isnan(idle.usd_per_million_tokens)


def test_figures_age_out_of_the_window() -> None:
    ring = ScrapeRing(window_seconds=10)
    for index, at in enumerate((0.0, 3.0, 6.0, 9.0)):
        ring.add(snapshot(parse(scrape_text(index)), at))
    assert ring.window() is not None
    ring.expire(18.5)  # only the scrape at 9.0 is within 10 s of 18.5
    assert ring.window() is None
    ring.expire(30.0)
    assert len(ring) == 0


def test_window_drops_the_increase_into_the_oldest_scrape() -> None:
    ring = ScrapeRing(window_seconds=10)
    for index, at in enumerate((0.0, 3.0, 6.0, 9.0)):
        ring.add(snapshot(parse(scrape_text(index)), at))
    ring.expire(14.0)  # scrapes at 0 and 3 leave; the window is 6 -> 9, i.e. scrape-2 -> scrape-3
    window = ring.window()
    assert window is not None
    assert window.seconds == 3.0
    assert window.counters["vllm:prompt_tokens_total"] == 58526 - 29640


# ----------------------------------------------------------------------------- properties


def exposition(engines: dict[str, tuple[float, float, list[float]]], bounds: list[float]) -> str:
    """vLLM-shaped text: per engine (prompt tokens, generation tokens, cumulative e2e buckets)."""
    lines = [
        "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
        "# TYPE vllm:prompt_tokens_total counter",
    ]
    lines += [
        f'vllm:prompt_tokens_total{{engine="{e}",model_name="m"}} {p}' for e, (p, _, _) in engines.items()
    ]
    lines += ["# TYPE vllm:generation_tokens_total counter"]
    lines += [
        f'vllm:generation_tokens_total{{engine="{e}",model_name="m"}} {g}' for e, (_, g, _) in engines.items()
    ]
    lines += ["# TYPE vllm:e2e_request_latency_seconds histogram"]
    for engine, (_, _, cumulative) in engines.items():
        for bound, count in zip([*bounds, math.inf], cumulative, strict=True):
            le = "+Inf" if math.isinf(bound) else repr(bound)
            labels = f'engine="{engine}",le="{le}",model_name="m"'
            lines.append(f"vllm:e2e_request_latency_seconds_bucket{{{labels}}} {count}")
    return "\n".join(lines) + "\n"


def cumulative(observations: list[float], bounds: list[float]) -> list[float]:
    return [float(sum(1 for o in observations if o <= b)) for b in [*bounds, math.inf]]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.lists(st.tuples(st.integers(0, 10_000), st.booleans()), min_size=3, max_size=3),
        min_size=1,
        max_size=8,
    )
)
def test_counter_resets_count_like_increase(steps: list[list[tuple[int, bool]]]) -> None:
    """Three engines; an engine that restarts starts again from zero; nothing is lost or double counted.

    A restart is only visible when the counter comes back lower than it was (as for `increase()`),
    so a generated restart to a value not below the old one is taken as ordinary growth.
    """
    values = [0, 0, 0]
    bounds = [1.0]
    ring = ScrapeRing(window_seconds=1e9)

    def add(at: float) -> None:
        engines = {str(e): (float(values[e]), 0.0, [0.0, 0.0]) for e in range(3)}
        ring.add(snapshot(parse(exposition(engines, bounds)), at))

    add(0.0)
    total = 0
    for i, step in enumerate(steps, start=1):
        for engine, (grown, restarted) in enumerate(step):
            values[engine] = grown if restarted and grown < values[engine] else values[engine] + grown
            total += grown
        add(float(i))
    window = ring.window()
    assert window is not None
    assert window.counters["vllm:prompt_tokens_total"] == total


@settings(max_examples=60, deadline=None)
@given(
    bounds=st.lists(st.floats(0.001, 1000), min_size=1, max_size=12, unique=True).map(sorted),
    observations=st.lists(st.floats(0.0, 2000), min_size=1, max_size=200),
    engines=st.integers(1, 8),
    q=st.sampled_from([0.5, 0.9, 0.95, 0.99]),
)
def test_quantile_lands_in_the_bucket_of_the_true_quantile(
    bounds: list[float], observations: list[float], engines: int, q: float
) -> None:
    """Custom buckets, observations spread over several engines: same bucket as the exact quantile."""
    before = {str(e): (0.0, 0.0, [0.0] * (len(bounds) + 1)) for e in range(engines)}
    after = {str(e): (0.0, 0.0, cumulative(observations[e::engines], bounds)) for e in range(engines)}
    ring = ScrapeRing(window_seconds=100)
    ring.add(snapshot(parse(exposition(before, bounds)), 0.0))
    ring.add(snapshot(parse(exposition(after, bounds)), 10.0))
    window = ring.window()
    assert window is not None
    assert figures(window, PRICING).requests == len(observations)
    ordered = sorted(observations)
    exact = ordered[math.ceil(q * len(ordered)) - 1]  # the observation at rank q * n
    estimate = histogram_quantile(q, window.buckets["vllm:e2e_request_latency_seconds"])
    if exact > bounds[-1]:
        assert estimate == bounds[-1]  # rank in +Inf: the largest finite bound
    else:
        i = next(i for i, bound in enumerate(bounds) if exact <= bound)
        lower = 0.0 if i == 0 else bounds[i - 1]
        assert lower <= estimate <= bounds[i]


@settings(max_examples=30, deadline=None)
@given(
    engines=st.integers(1, 8),
    bounds=st.lists(st.floats(0.01, 100), min_size=1, max_size=6, unique=True).map(sorted),
)
def test_empty_windows_have_no_latency(engines: int, bounds: list[float]) -> None:
    same = {str(e): (7.0, 3.0, [2.0] * (len(bounds) + 1)) for e in range(engines)}
    text = exposition(same, bounds)
    ring = ScrapeRing(window_seconds=100)
    ring.add(snapshot(parse(text), 0.0))
    ring.add(snapshot(parse(text), 5.0))
    got = figures(ring.window(), PRICING)
    assert got.requests == 0
    assert math.isnan(got.p95_e2e_latency_seconds)
    assert got.prompt_tokens_per_second == 0
    assert math.isnan(got.usd_per_million_tokens)
    assert math.isnan(got.prefix_cache_hit_ratio)  # no prefix-cache series at all


def test_histogram_quantile_edge_cases() -> None:
    assert math.isnan(histogram_quantile(0.95, {}))
    assert math.isnan(histogram_quantile(0.95, {1.0: 3.0}))  # no +Inf bucket
    assert histogram_quantile(0.95, {1.0: 0.0, 2.0: 0.0, math.inf: 10.0}) == 2.0  # rank in +Inf
    assert histogram_quantile(0.5, {1.0: 4.0, math.inf: 4.0}) == 0.5  # first bucket starts at 0
    assert histogram_quantile(0.5, {1.0: 4.0, 2.0: 3.0, math.inf: 8.0}) == 1.0  # non-monotonic evened out
    assert histogram_quantile(2.0, {1.0: 1.0, math.inf: 1.0}) == math.inf
