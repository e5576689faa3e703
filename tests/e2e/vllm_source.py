"""A vLLM-format /metrics source on 127.0.0.1 whose traffic the test sets.

The text is a real vLLM 0.32.0 scrape (`scrape-3.prom` of the shared fixtures) used as a template:
every family, label set, bucket bound and line of it is served as vLLM wrote it, and only the series
the cost model reads move, from the template's values, at the rates of the current :class:`Traffic`:
the token and prefix-cache counters, finished requests, and the e2e / TTFT / inter-token-latency
histograms (each request lands in the buckets at or above its latency; each generated token is one
inter-token observation). Counters only ever grow, as vLLM's do.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
_LE = re.compile(r'le="([^"]+)"')
HISTOGRAMS = {
    "vllm:e2e_request_latency_seconds": "e2e",
    "vllm:time_to_first_token_seconds": "ttft",
    "vllm:inter_token_latency_seconds": "itl",
}


@dataclass(frozen=True)
class Traffic:
    """Steady traffic: per-second rates, the share of prompt tokens served from the prefix cache, and
    the latency every request (or generated token, for ITL) sees."""

    prompt_tokens_per_second: float = 0.0
    generation_tokens_per_second: float = 0.0
    requests_per_second: float = 0.0
    prefix_hit_ratio: float = 0.0
    e2e_seconds: float = 0.25
    ttft_seconds: float = 0.02
    itl_seconds: float = 0.015


class VllmSource:
    """Serves the template with its moving series advanced to the moment of each request."""

    def __init__(self, template: str) -> None:
        self._lines = template.splitlines()
        self._clock = time.monotonic
        self._lock = threading.Lock()
        self._traffic = Traffic()
        self._since = self._clock()
        # accumulated increases up to self._since, per series kind
        self._done: dict[str, float] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="vllm-source", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/metrics"

    def start(self) -> VllmSource:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def set_traffic(self, traffic: Traffic) -> None:
        """From now on, the series move at these rates (what was served so far stays counted)."""
        with self._lock:
            now = self._clock()
            self._done = self._increases(now)
            self._traffic, self._since = traffic, now

    def _increases(self, now: float) -> dict[str, float]:
        """Every increase since the start, keyed by series kind (``bucket:e2e:0.3`` for a bucket)."""
        t, dt = self._traffic, now - self._since
        out = dict(self._done)

        def add(key: str, value: float) -> None:
            out[key] = out.get(key, 0.0) + value

        requests = t.requests_per_second * dt
        prompt = t.prompt_tokens_per_second * dt
        generated = t.generation_tokens_per_second * dt
        add("prompt", prompt)
        add("generation", generated)
        add("queries", prompt)
        add("hits", prompt * t.prefix_hit_ratio)
        add("requests", requests)
        for kind, count, latency in (
            ("e2e", requests, t.e2e_seconds),
            ("ttft", requests, t.ttft_seconds),
            ("itl", generated, t.itl_seconds),
        ):
            add(f"count:{kind}", count)
            add(f"sum:{kind}", count * latency)
            add(f"latency:{kind}:{latency!r}", count)
        return out

    def render(self) -> str:
        with self._lock:
            increases = self._increases(self._clock())
        out = []
        for line in self._lines:
            match = _SAMPLE.match(line)
            if match is None:
                out.append(line)
                continue
            name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
            grown = self._grown(name, labels, increases)
            out.append(line if grown == 0.0 else f"{name}{labels} {value + grown!r}")
        return "\n".join(out) + "\n"

    @staticmethod
    def _grown(name: str, labels: str, increases: dict[str, float]) -> float:
        simple = {
            "vllm:prompt_tokens_total": "prompt",
            "vllm:generation_tokens_total": "generation",
            "vllm:prefix_cache_queries_total": "queries",
            "vllm:prefix_cache_hits_total": "hits",
        }
        if name in simple:
            return increases.get(simple[name], 0.0)
        if name == "vllm:request_success_total":
            return increases.get("requests", 0.0) if 'finished_reason="length"' in labels else 0.0
        for family, kind in HISTOGRAMS.items():
            if name == f"{family}_count":
                return increases.get(f"count:{kind}", 0.0)
            if name == f"{family}_sum":
                return increases.get(f"sum:{kind}", 0.0)
            if name == f"{family}_bucket":
                le = _LE.search(labels)
                assert le is not None, f"bucket without le: {name}{labels}"
                bound = float(le.group(1))
                prefix = f"latency:{kind}:"
                return sum(
                    v
                    for k, v in increases.items()
                    if k.startswith(prefix) and float(k[len(prefix) :]) <= bound
                )
        return 0.0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        source = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = source.render().encode() if self.path == "/metrics" else b""
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                """Quiet: a scrape every second per sidecar would drown the test log."""

        return Handler
