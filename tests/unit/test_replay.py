"""`datajax-operator replay` and `datajax-sidecar record`: the operator's judgement offline over a
timeline, on the shapes of DESIGN §6; a timeline recorded from real vLLM scrapes replays."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from djm_fixtures import doc_with

from datajax_operator.cli import main
from datajax_runtime.cli import main as sidecar_main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vllm_fixtures import scrape_text

KEYS = [
    "window_seconds", "requests", "p95_e2e_latency_seconds", "p95_ttft_seconds", "prefix_cache_hit_ratio",
    "prompt_tokens_per_second", "generation_tokens_per_second", "usd_per_hour", "usd_per_million_tokens",
    "breakeven_tokens_per_second",
]  # fmt: skip


def figures(prompt: float, generation: float, usd_per_hour: float = 21.6) -> dict[str, Any]:
    """A slice's analyze JSON: 8 v6e chips at $2.70, a $3 ceiling."""
    tokens = prompt + generation
    return {
        "window_seconds": 60.0,
        "requests": 100,
        "p95_e2e_latency_seconds": 0.3,
        "p95_ttft_seconds": 0.03,
        "prefix_cache_hit_ratio": 0.5,
        "prompt_tokens_per_second": prompt,
        "generation_tokens_per_second": generation,
        "usd_per_hour": usd_per_hour,
        "usd_per_million_tokens": usd_per_hour / (tokens * 3600) * 1e6 if tokens else None,
        "breakeven_tokens_per_second": usd_per_hour * 1e6 / (3600 * 3.0),
    }


def _replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: dict[str, Any], lines: list[Any], *out: str
) -> tuple[int, str, str]:
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(model))
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    code = main(["replay", "-f", str(tmp_path / "model.yaml"), "--scrapes", str(tmp_path / "t.jsonl"), *out])
    stdout, stderr = capsys.readouterr()
    return code, stdout, stderr


def test_replay_of_the_noisy_scrape_case_scales_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17's case through the command: ~$54/Mtok, 1 m window, ScaleDown, one slice failing one
    scrape in six; declared at 60 s with one ScaledDown Event, then one slice."""
    model = doc_with(replicas=2, cost={"window": "1m", "action": "ScaleDown"})
    dear = figures(100.0, 11.1)
    lines = [{"t": 10 * i, "slices": [dear, None if i % 6 == 5 else dear]} for i in range(31)]
    code, out, err = _replay(tmp_path, capsys, model, lines, "-o", "json")
    assert (code, err) == (0, "")
    timeline = json.loads(out)["timeline"]
    assert len(timeline) == 31
    assert set(timeline[0]) == {"t", "conditions", "replicas", "events"}
    breached = [row["t"] for row in timeline if row["conditions"]["CostCeilingBreached"] == "True"]
    assert breached[0] == 60 and breached == [10 * i for i in range(6, 31)]
    assert [row["t"] for row in timeline if "ScaledDown" in row["events"]] == [60]
    assert [row["replicas"] for row in timeline] == [2] * 6 + [1] * 25
    assert all(row["conditions"]["MetricsAvailable"] == "True" for row in timeline)


def test_replay_table_and_no_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every scrape failed: nothing is judged, nothing acts, whatever the action."""
    model = doc_with(cost={"window": "1m", "action": "Suspend"})
    lines = [{"t": 30 * i, "slices": [None]} for i in range(10)]
    code, out, _ = _replay(tmp_path, capsys, model, lines, "-o", "table")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split()[:2] == ["T", "REPLICAS"] and "COSTCEILINGBREACHED" in rows[0]
    assert len(rows) == 11
    code, out, _ = _replay(tmp_path, capsys, model, lines)
    timeline = json.loads(out)["timeline"]
    assert {row["conditions"]["CostCeilingBreached"] for row in timeline} == {"Unknown"}
    assert {row["replicas"] for row in timeline} == {1}
    assert not any("Suspended" in row["events"] for row in timeline)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"t": 5, "slices": [{"usd": 1}]}, "t.jsonl:2: slices[0]: unknown key(s) usd"),
        ({"t": 0, "slices": []}, "t.jsonl:2: t 0 does not increase"),
        ({"t": 5, "slices": {}}, "t.jsonl:2: slices must be a list"),
        ({"t": 5}, 't.jsonl:2: expected {"t": seconds'),
        ({"t": 5, "slices": [{"usd_per_hour": "x"}]}, "t.jsonl:2: slices[0].usd_per_hour: expected a number"),
    ],
)
def test_a_bad_timeline_names_the_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: dict[str, Any], message: str
) -> None:
    code, out, err = _replay(tmp_path, capsys, doc_with(), [{"t": 0, "slices": []}, line])
    assert code == 1 and out == ""
    assert message in err


def test_an_invalid_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _replay(tmp_path, capsys, doc_with(replicas=-1), [{"t": 0, "slices": []}])
    assert code == 2 and "spec.replicas" in err


class _Scrapes(BaseHTTPRequestHandler):
    """Serves the real vLLM scrapes 0..3 in turn, and a 500 for the request numbered in ``fail``."""

    served = 0
    fail = 2

    def do_GET(self) -> None:
        number = type(self).served
        type(self).served += 1
        if number == self.fail:
            self.send_error(500)
            return
        body = scrape_text(min(number - (number > self.fail), 3)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def vllm() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scrapes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()


def test_record_then_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], vllm: str) -> None:
    """A timeline recorded from real vLLM scrapes over HTTP (one failed) is what replay reads."""
    out = tmp_path / "t.jsonl"
    code = sidecar_main(
        ["record", "--upstream", vllm, "--chips", "8", "--usd-per-chip-hour", "2.7", "--window", "1m",
         "--interval", "0.2s", "--count", "5", "-o", str(out)]
    )  # fmt: skip
    assert code == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 5 and [line["t"] for line in lines] == sorted(line["t"] for line in lines)
    assert lines[2]["slices"] == [None]  # the failed scrape
    assert lines[0]["slices"][0]["usd_per_hour"] == pytest.approx(21.6)
    assert lines[0]["slices"][0]["prompt_tokens_per_second"] is None  # one scrape: no window yet
    assert list(lines[3]["slices"][0]) == KEYS
    assert lines[3]["slices"][0]["prompt_tokens_per_second"] > 0  # scrape 1 -> 2 of the fixtures
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(doc_with()))
    code = main(["replay", "-f", str(tmp_path / "model.yaml"), "--scrapes", str(out)])
    stdout, _ = capsys.readouterr()
    assert code == 0
    timeline = json.loads(stdout)["timeline"]
    assert [row["t"] for row in timeline] == [line["t"] for line in lines]
    assert timeline[-1]["conditions"]["MetricsAvailable"] == "True"


def test_the_replay_reads_exactly_the_sidecars_analyze_keys() -> None:
    from datajax_operator.replay import FIGURE_KEYS
    from datajax_runtime.window import ANALYZE_KEYS

    assert sorted(FIGURE_KEYS) == sorted(ANALYZE_KEYS)
