"""Whether a pod's start found compiled XLA programs in its cache, and how long the start took.

tpu-inference hands `VLLM_XLA_CACHE_PATH` to JAX as its persistent compilation cache directory
(`tpu_inference/runner/compilation_manager.py`): one file per compiled program. A first start compiles
every token and sequence bucket (10 to 30 minutes for a large model on a big slice; a start that finds
the programs takes 1 to 3, vLLM issue #7533). The sidecar, which starts with the vLLM container and
mounts the same directory read-only, counts the cache entries when it starts and again when vLLM first
answers, and times that interval:

- hit: the directory already held programs when the pod started (an earlier container of this pod on
  the emptyDir, or any pod of the same shape on a shared claim or bucket);
- startup seconds: sidecar start to vLLM's first answered `/metrics` (vLLM's API server only answers
  once the engine has loaded the weights and compiled), an upper bound on the compile time;
- entries compiled: programs added between the two counts (0 on a full hit).

`CacheTracker` is pure apart from `count_entries`, the one filesystem read; the clock is injected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CacheReport", "CacheTracker", "count_entries"]


def count_entries(directory: str | Path) -> int:
    """Files below the cache directory (0 when it does not exist yet: nothing was ever compiled here)."""
    total = 0
    for _, _, files in os.walk(directory):
        total += len(files)
    return total


@dataclass(frozen=True)
class CacheReport:
    """What the sidecar exports about the compile cache."""

    entries_at_start: int
    entries_at_ready: int | None
    startup_seconds: float | None

    @property
    def hit(self) -> bool:
        return self.entries_at_start > 0

    @property
    def compiled(self) -> int | None:
        if self.entries_at_ready is None:
            return None
        return max(0, self.entries_at_ready - self.entries_at_start)


class CacheTracker:
    """Counts at start, then once at the first successful scrape of vLLM."""

    def __init__(self, directory: str, now: float) -> None:
        self.directory = directory
        self._started = now
        self._report = CacheReport(count_entries(directory), None, None)

    @property
    def report(self) -> CacheReport:
        return self._report

    def upstream_answered(self, now: float) -> None:
        """Record the first answer; later answers change nothing (a restarted vLLM restarts the pod's
        container, and with it this sidecar only if the pod is recreated)."""
        if self._report.startup_seconds is not None:
            return
        self._report = CacheReport(
            self._report.entries_at_start, count_entries(self.directory), max(0.0, now - self._started)
        )
