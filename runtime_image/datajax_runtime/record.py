"""`datajax-sidecar record`: a timeline of the figures each slice's sidecar would export, one JSON line
per interval, for `datajax-operator replay` to judge offline.

Each line is ``{"t": seconds since the first scrape, "slices": [FIGURES | null, ...]}``, FIGURES being
the `analyze -o json` keys (DESIGN §6) over the window ending at that scrape, one entry per
``--upstream`` (one vLLM per slice), null for a scrape that failed. The figures come from the very
functions `serve` runs (parse -> snapshot -> ring -> figures), so a user can record their own traffic
and try a ceiling, a window and an action on it before enabling them.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import IO, Any

from datajax_runtime.exposition import parse
from datajax_runtime.ring import ScrapeRing
from datajax_runtime.window import Pricing, figures, snapshot

MAX_BYTES = 16 << 20
"""A vLLM exposition is tens of kB; more is not one."""


def fetch(url: str, timeout: float) -> str:
    """The text at ``url`` (OSError on any failure to get it)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read(MAX_BYTES + 1)
    if len(body) > MAX_BYTES:
        raise OSError(f"{url}: more than {MAX_BYTES} bytes")
    return body.decode("utf-8")


class Recorder:
    """One ring per slice; ``line(t)`` scrapes every slice once and returns the timeline entry."""

    def __init__(
        self,
        upstreams: Sequence[str],
        pricing: Pricing,
        window_seconds: float,
        get: Callable[[str], str],
    ) -> None:
        self._upstreams = list(upstreams)
        self._pricing = pricing
        self._rings = [ScrapeRing(window_seconds) for _ in upstreams]
        self._get = get

    def _slice(self, index: int, t: float) -> dict[str, Any] | None:
        ring = self._rings[index]
        try:
            ring.add(snapshot(parse(self._get(self._upstreams[index])), t))
        except (OSError, ValueError):  # ValueError: ExpositionError and UnicodeDecodeError among them
            ring.expire(t)
            return None
        return figures(ring.window(), self._pricing).to_json()

    def line(self, t: float) -> dict[str, Any]:
        return {"t": round(t, 3), "slices": [self._slice(i, t) for i in range(len(self._upstreams))]}


def record(
    recorder: Recorder,
    out: IO[str],
    interval: float,
    count: int | None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write a line every ``interval`` seconds (``count`` lines, or until interrupted); returns how
    many were written."""
    start = clock()
    written = 0
    while count is None or written < count:
        due = start + written * interval
        if (wait := due - clock()) > 0:
            sleep(wait)
        out.write(json.dumps(recorder.line(clock() - start), allow_nan=False) + "\n")
        out.flush()
        written += 1
    return written
