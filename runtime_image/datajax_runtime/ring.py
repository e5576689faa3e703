"""The ring of recent scrapes the sidecar computes its window over.

Each entry keeps the reset-aware increase from its predecessor, and the ring keeps the running sum
of those increases, so a new scrape costs one pairwise increase and the window costs nothing to
re-add, however many scrapes a 10-minute window holds. The sums stay exact: every quantity summed is a
count (tokens, requests, bucket observations), an integer well inside a float's exact range.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from datajax_runtime.window import Increase, Snapshot, increase

__all__ = ["ScrapeRing"]


@dataclass
class _Entry:
    snapshot: Snapshot
    since_previous: Increase | None


class ScrapeRing:
    """Scrapes no older than `window_seconds` before the newest clock reading, oldest first."""

    def __init__(self, window_seconds: float) -> None:
        if window_seconds <= 0:
            raise ValueError(f"window must be positive, got {window_seconds} s")
        self.window_seconds = window_seconds
        self._entries: deque[_Entry] = deque()
        self._counters: dict[str, float] = {}
        self._buckets: dict[str, dict[float, float]] = {}
        # How many summed increases mention each metric: a metric none of them has is unknown (NaN),
        # which is not the same as a metric that grew by zero.
        self._counter_refs: dict[str, int] = {}
        self._bucket_refs: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, snapshot: Snapshot) -> None:
        """Append a scrape, then forget the ones that fell out of the window ending at it."""
        if self._entries and snapshot.time <= self._entries[-1].snapshot.time:
            raise ValueError("scrapes must be added in increasing time order")
        since = increase(self._entries[-1].snapshot, snapshot) if self._entries else None
        self._entries.append(_Entry(snapshot, since))
        if since is not None:
            self._apply(since, +1)
        self.expire(snapshot.time)

    def expire(self, now: float) -> None:
        """Drop scrapes older than the window ending at `now`, so stale figures age out."""
        horizon = now - self.window_seconds
        entries = self._entries
        while entries and entries[0].snapshot.time < horizon:
            entries.popleft()
            if entries and entries[0].since_previous is not None:
                self._apply(entries[0].since_previous, -1)
                entries[0].since_previous = None

    def window(self) -> Increase | None:
        """The summed increase from the oldest to the newest scrape held; None below two scrapes."""
        if len(self._entries) < 2:
            return None
        seconds = self._entries[-1].snapshot.time - self._entries[0].snapshot.time
        return Increase(
            seconds=seconds,
            counters=dict(self._counters),
            buckets={name: dict(by_bound) for name, by_bound in self._buckets.items()},
        )

    def _apply(self, part: Increase, sign: int) -> None:
        for name, value in part.counters.items():
            self._counters[name] = self._counters.get(name, 0.0) + sign * value
            refs = self._counter_refs.get(name, 0) + sign
            if refs:
                self._counter_refs[name] = refs
            else:
                del self._counter_refs[name]
                del self._counters[name]
        for name, by_bound in part.buckets.items():
            target = self._buckets.setdefault(name, {})
            for bound, value in by_bound.items():
                target[bound] = target.get(bound, 0.0) + sign * value
            refs = self._bucket_refs.get(name, 0) + sign
            if refs:
                self._bucket_refs[name] = refs
            else:
                del self._bucket_refs[name]
                del self._buckets[name]
