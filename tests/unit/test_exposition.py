"""The exposition parser: agrees with prometheus_client on real vLLM text, rejects bad text precisely."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from datajax_runtime.exposition import ExpositionError, parse, parse_labels

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vllm_fixtures import scrape_text


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_every_sample_of_a_real_scrape_matches_prometheus_client(index: int) -> None:
    text = scrape_text(index)
    ours = parse(text)
    theirs = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    mine = {
        (name, tuple(sorted(parse_labels(raw)))): value
        for name, raw, value in zip(ours.names, ours.labels, ours.values, strict=True)
    }
    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        assert mine[key] == value or (math.isnan(mine[key]) and math.isnan(value)), key
    assert len(mine) > 400  # the whole exposition, not just the families the window math uses


def test_series_lookup_and_labels() -> None:
    scrape = parse(scrape_text(3))
    assert scrape.series("vllm:prompt_tokens_total") == [('{engine="0",model_name="tiny"}', 58526.0)]
    assert scrape.series("no_such_metric") == []
    buckets = scrape.labelled("vllm:e2e_request_latency_seconds_bucket")
    assert buckets[0] == ({"engine": "0", "le": "0.3", "model_name": "tiny"}, 177.0)
    assert buckets[-1][0]["le"] == "+Inf"


def test_openmetrics_quirks_and_escapes() -> None:
    text = (
        '# HELP m A metric, with \\ and "quotes" in help\r\n'
        "# TYPE m counter\r\n"
        "# UNIT m seconds\r\n"
        'm_total{path="/a\\"b\\\\c\\nd",brace="}",} 3 1700000000.5\r\n'
        'm_created{path="x"} 1.7e9\r\n'
        'h_bucket{le="+Inf"} 4 # {trace_id="abc"} 0.5 1700000000\r\n'
        "g +Inf\r\n"
        "n NaN\r\n"
        "z{} -Inf\r\n"
        "\r\n"
        "# a free comment\r\n"
        "# EOF\r\n"
    )
    scrape = parse(text)
    assert scrape.labelled("m_total") == [({"path": '/a"b\\c\nd', "brace": "}"}, 3.0)]
    assert scrape.series("h_bucket") == [('{le="+Inf"}', 4.0)]
    assert scrape.series("g")[0][1] == math.inf
    assert math.isnan(scrape.series("n")[0][1])
    assert scrape.series("z") == [("{}", -math.inf)]


def test_empty_exposition_has_no_samples() -> None:
    assert parse("").names == ()
    assert parse("# only a comment\n").names == ()


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ('a 1\nb{x="1} 2\n', 2, "malformed label set"),
        ('a 1\nb{x="\\q"} 2\n', 2, "invalid escape"),
        ("a 1\nb 1_000\n", 2, "value '1_000' is not a number"),
        ("a 1\nb one\n", 2, "value 'one' is not a number"),
        ("a 1\nb\n", 2, "sample has no value"),
        ('a 1\nb{x="1"}2\n', 2, "expected a space"),
        ("a 1\nb 2 soon\n", 2, "timestamp 'soon' is not a number"),
        ('a 1\n{x="1"} 2\n', 2, "does not start with a metric name"),
        ("# TYPE a sometimes\na 1\n", 1, "malformed TYPE line"),
        ("# TYPE a gauge\n# TYPE a counter\na 1\n", 2, "second TYPE line for a"),
        ("# HELP\na 1\n", 1, "malformed HELP line"),
        ("a 1\na 2\n", 2, "duplicate sample"),
        ('a{x="1"} 1\nb 2\na{x="1"} 3\n', 3, "duplicate sample"),
        ("a 1\rb 2\n", 1, "stray carriage return"),
        ('a 1 # {t="x"} y\n', 1, "unexpected text after the value"),
        ("<html>502 Bad Gateway</html>\n", 1, "does not start with a metric name"),
    ],
)
def test_malformed_text_is_rejected_with_line_and_reason(text: str, line: int, problem: str) -> None:
    with pytest.raises(ExpositionError) as caught:
        parse(text)
    assert caught.value.line == line
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"line {line}: ")


def test_a_corrupted_real_scrape_names_the_bad_line() -> None:
    lines = scrape_text(2).split("\n")
    target = next(i for i, line in enumerate(lines) if line.startswith("vllm:prompt_tokens_total"))
    lines[target] = lines[target].replace("}", "", 1)
    with pytest.raises(ExpositionError) as caught:
        parse("\n".join(lines))
    assert caught.value.line == target + 1
