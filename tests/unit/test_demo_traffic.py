"""The demo's vLLM stand-in: the exposition keeps the real scrape's layout, and the traffic model's
figures, read back with the sidecar's own parser and window math, are the ones it was set to produce."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from datajax_devtools.demo.exposition import VllmExposition, one_two_five, template_text
from datajax_devtools.demo.traffic import SliceModel, SteadyReplica, SteadyTraffic, TrafficModel
from datajax_runtime.exposition import parse
from datajax_runtime.window import Figures, Pricing, figures, increase, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vllm_fixtures import scrape_text

STAMPS = ("_created", "process_start_time_seconds")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_template_is_the_real_fresh_scrape() -> None:
    assert template_text() == scrape_text(0)


def test_exposition_keeps_every_real_sample() -> None:
    """Same series, same values, as the real scrape; only the start-up stamps are the simulator's."""
    real = samples(scrape_text(0))
    ours = samples(VllmExposition("tiny", started_at=1.0).text())
    assert ours.keys() == real.keys()
    for key, value in real.items():
        if not key[0].endswith(STAMPS):
            assert ours[key] == value, key
        else:
            assert ours[key] == 1.0


def test_token_histograms_follow_the_context_length() -> None:
    """vLLM derives token-count bounds from --max-model-len (1-2-5 series); latency bounds stay."""
    assert one_two_five(512) == [1, 2, 5, 10, 20, 50, 100, 200, 500]
    text = VllmExposition("llama3-8b", max_model_len=8192, started_at=1.0).text()
    exposition = parse(text)
    bounds = [labels["le"] for labels, _ in exposition.labelled("vllm:request_prompt_tokens_bucket")]
    assert bounds[-3:] == ["2000.0", "5000.0", "+Inf"]
    real_e2e = [
        labels["le"]
        for labels, _ in parse(scrape_text(0)).labelled("vllm:e2e_request_latency_seconds_bucket")
    ]
    assert [
        labels["le"] for labels, _ in exposition.labelled("vllm:e2e_request_latency_seconds_bucket")
    ] == real_e2e
    assert {labels["model_name"] for labels, _ in exposition.labelled("vllm:prompt_tokens_total")} == {
        "llama3-8b"
    }


def window(
    rate: float, seconds: float = 600.0, slice_model: SliceModel | None = None
) -> tuple[Figures, TrafficModel]:
    traffic = TrafficModel(slice_model=slice_model, seed=3)
    replica = traffic.new_replica("a", "llama3-8b", now=0.0)
    traffic.attach(replica, now=0.0)
    traffic.set_rate(rate, now=0.0)
    before = snapshot(parse(traffic.scrape(replica, 0.0)), 0.0)
    after = snapshot(parse(traffic.scrape(replica, seconds)), seconds)
    return figures(increase(before, after), Pricing(chips=8, usd_per_chip_hour=2.7)), traffic


def test_figures_match_the_traffic_it_was_given() -> None:
    result, traffic = window(5.0)
    assert result.requests_per_second == pytest.approx(5.0, rel=0.1)
    tokens = result.prompt_tokens_per_second + result.generation_tokens_per_second
    assert tokens == pytest.approx(traffic.tokens_per_second(), rel=0.1)
    mix = traffic.mix
    mean_output = mix.output_tokens_median * math.exp(mix.output_tokens_sigma**2 / 2)
    expected_hit = mix.prefix_share * mix.shared_prefix_tokens / (mix.mean_tokens() - mean_output)
    assert result.prefix_cache_hit_ratio == pytest.approx(expected_hit, rel=0.15)
    assert result.usd_per_million_tokens == pytest.approx(21.6 / (tokens * 3600) * 1e6)
    assert 0.5 < result.p95_e2e_latency_seconds < 5.0
    assert result.p95_ttft_seconds < result.p95_e2e_latency_seconds


def test_latency_grows_with_load_and_cost_falls() -> None:
    quiet, _ = window(1.0)
    busy, _ = window(15.0)
    assert busy.p95_e2e_latency_seconds > 1.5 * quiet.p95_e2e_latency_seconds
    assert busy.usd_per_million_tokens < quiet.usd_per_million_tokens / 10


def test_rate_split_over_replicas_and_counters_only_grow() -> None:
    traffic = TrafficModel(seed=5)
    a = traffic.new_replica("a", "m", now=0.0)
    b = traffic.new_replica("b", "m", now=0.0)
    traffic.attach(a, 0.0)
    traffic.set_rate(8.0, 0.0)
    assert a.rate == 8.0
    traffic.attach(b, 10.0)
    assert a.rate == b.rate == 4.0
    first = a.metrics.value("vllm:request_success_total")
    traffic.detach("b", 20.0)
    assert a.rate == 8.0 and b.rate == 0.0
    traffic.scrape(a, 30.0)
    assert a.metrics.value("vllm:request_success_total") > first
    assert not math.isnan(a.metrics.value("vllm:kv_cache_usage_perc"))


def test_steady_traffic_reads_back_as_the_rates_it_was_given() -> None:
    """The e2e tests' vLLM source: exact rates through the sidecar's own parser and window math."""
    replica = SteadyReplica(scrape_text(3), now=0.0)
    replica.set_traffic(
        SteadyTraffic(4000, 1000, requests_per_second=20, prefix_hit_ratio=0.6, e2e_seconds=0.4), 0.0
    )
    before = snapshot(parse(replica.scrape(10.0)), 10.0)
    after = snapshot(parse(replica.scrape(70.0)), 70.0)
    result = figures(increase(before, after), Pricing(chips=8, usd_per_chip_hour=2.7))
    assert result.prompt_tokens_per_second == pytest.approx(4000)
    assert result.generation_tokens_per_second == pytest.approx(1000)
    assert result.requests_per_second == pytest.approx(20)
    assert result.prefix_cache_hit_ratio == pytest.approx(0.6)
    assert 0.3 < result.p95_e2e_latency_seconds <= 0.5  # every request in the (0.3, 0.5] bucket
    assert result.usd_per_million_tokens == pytest.approx(21.6 / (5000 * 3600) * 1e6)
    replica.set_traffic(SteadyTraffic(), 70.0)  # traffic stops: counters stay where they were
    assert replica.scrape(100.0) == replica.scrape(130.0)
