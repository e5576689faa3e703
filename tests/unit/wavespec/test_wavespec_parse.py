"""Parsing the exporter's JSON: both exporter generations, and every bad field named at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datajax_operator.plan.wavespec import WaveSpecError, parse_wavespec, prefix_reuse, tpu_page_size

HERE = Path(__file__).parent


def _doc(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((HERE / f"{name}.wavespec.json").read_text())
    return loaded


def test_newer_exporter_fields_are_read() -> None:
    ws = parse_wavespec(json.dumps(_doc("chat-shared-system-prompt")))
    assert ws.row_count == 48213 and ws.prefix_len == 6 and ws.page_bits == 12
    assert ws.chunk_len is not None and ws.chunk_len.p90 == 2460.0
    assert ws.window is not None and ws.window.p99 == 452.0
    assert ws.prefix_histogram[0] == (1, 16) and ws.prefix_histogram[-1] == (6, 2398)
    assert ws.pack_order[0] == "messages" and len(ws.cohorts) == 64 and len(ws.extents) == 12


def test_legacy_exporter_without_histogram_or_summaries_parses() -> None:
    ws = parse_wavespec(_doc("legacy-exporter"))
    assert ws.chunk_len is None and ws.window is None and ws.prefix_histogram == ()
    reuse = prefix_reuse(ws)
    assert reuse is not None and reuse.lower_bound


def test_linear_counting_undoes_hash_collisions() -> None:
    # 1,000 distinct keys hashed into 4096 buckets occupy ~891: the raw count would claim 11% reuse.
    doc = {"meta": {"row_count": 1000, "page_bits": 20}, "prefix_histogram": {"3": 891}}
    reuse = prefix_reuse(parse_wavespec(doc))
    assert reuse is not None and abs(reuse.share) < 0.01


def test_shallow_cohorts_are_not_taken_as_reuse() -> None:
    cohorts = [{"prefix": "ab", "count": 500, "bytes": None}, {"prefix": "cd", "count": 400, "bytes": None}]
    doc = {"meta": {"row_count": 1000, "page_bits": 20}, "cohorts": cohorts}
    assert prefix_reuse(parse_wavespec(doc)) is None


def test_every_bad_field_is_named() -> None:
    doc = _doc("chat-shared-system-prompt")
    meta = doc["meta"]
    assert isinstance(meta, dict)
    meta["row_count"] = -1
    meta["chunk_len_summary"] = {**meta["chunk_len_summary"], "p90": 5000.0}
    doc["prefix_histogram"] = {"1": 17, "x": 3}
    with pytest.raises(WaveSpecError) as err:
        parse_wavespec(doc)
    fields = [p.field for p in err.value.problems]
    assert fields == [
        "waveSpec.meta.row_count",
        "waveSpec.meta.chunk_len_summary",
        "waveSpec.prefix_histogram.x",
    ]
    # the histogram's own rules run once its depths are numbers
    doc["prefix_histogram"] = {"1": 17, "2": 3}
    meta["row_count"], meta["chunk_len_summary"] = 48213, {}
    with pytest.raises(WaveSpecError) as err:
        parse_wavespec(doc)
    assert [str(p) for p in err.value.problems] == [
        "waveSpec.prefix_histogram: depth 1: 17 distinct prefixes cannot fit in 1 hex digits"
    ]
    doc["prefix_histogram"] = {"1": 16, "2": 3}
    with pytest.raises(WaveSpecError, match="must not decrease with depth"):
        parse_wavespec(doc)
    doc["prefix_histogram"], meta["row_count"] = {"1": 16}, 10
    with pytest.raises(WaveSpecError, match=r"depth 1 exceed meta\.row_count 10"):
        parse_wavespec(doc)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"cohorts": []}'])
def test_not_a_wave_spec(text: str) -> None:
    with pytest.raises(WaveSpecError, match="waveSpec"):
        parse_wavespec(text)


def test_page_size_follows_tpu_inference() -> None:
    assert tpu_page_size(4096, 256) == 256
    assert tpu_page_size(2048, 256) == 128
    assert tpu_page_size(32768, 64) == 16
    # Block tables of 256 x 32768-token requests must fit half of SMEM: 512 pages each, so 64 tokens a page.
    assert tpu_page_size(32768, 256) == 64
