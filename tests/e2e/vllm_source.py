"""A vLLM-format /metrics source on 127.0.0.1 whose traffic the test sets.

The text is a real vLLM 0.32.0 scrape (`scrape-3.prom` of the shared fixtures) used as a template, and
the series move as the development tools' vLLM simulator moves them under steady traffic
(`datajax_devtools.demo.traffic.SteadyReplica`: exact rates, no randomness), so the tests, the demo
and the simulator's own unit tests exercise one simulator. This module only serves it over HTTP.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from datajax_devtools.demo.traffic import SteadyReplica
from datajax_devtools.demo.traffic import SteadyTraffic as Traffic

__all__ = ["Traffic", "VllmSource"]


class VllmSource:
    """Serves the template with its moving series advanced to the moment of each request."""

    def __init__(self, template: str) -> None:
        self._clock = time.monotonic
        self._replica = SteadyReplica(template, now=self._clock())
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
        self._replica.set_traffic(traffic, self._clock())

    def render(self) -> str:
        return self._replica.scrape(self._clock())

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
