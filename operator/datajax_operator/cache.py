"""The operator's view of the objects it watches, kept current by the watch events kopf delivers.

A pass reads the model and its children from here instead of sending a GET each (DESIGN §2: children
are read from watch caches). kopf already watches the models and the children of the watched kinds
(for the child events that trigger a pass); every event's object is stored here, newest
``resourceVersion`` first, and so is every object the operator's own writes return.

What the cache does not know (an object no event has reported yet, a kind nobody watches) is read
from the API server by the caller, and the answer stored: an object of a watched kind found absent
stays known-absent until an event says otherwise. An unwatched kind (the settings ConfigMap, which
the chart's RBAC lets the operator read but not watch) is trusted for ``ttl`` seconds only, so a
person's edit of it is reverted at most that late.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str, str]
"""(kind, namespace, name)."""


@dataclass(frozen=True)
class Known:
    obj: dict[str, Any] | None
    """None: known not to exist."""
    at: float


def _version(obj: dict[str, Any]) -> int | None:
    text = obj.get("metadata", {}).get("resourceVersion")
    return int(text) if isinstance(text, str) and text.isdigit() else None


class ObjectCache:
    """Thread-safe: watch events arrive in the event loop, passes run in worker threads."""

    def __init__(
        self, watched: frozenset[str], ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._watched = watched
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._known: dict[Key, Known] = {}

    @staticmethod
    def key_of(obj: dict[str, Any]) -> Key:
        meta = obj["metadata"]
        return (obj["kind"], meta.get("namespace", ""), meta["name"])

    def lookup(self, kind: str, namespace: str, name: str) -> Known | None:
        """What is known of the object (None: nothing, read it from the server)."""
        with self._lock:
            known = self._known.get((kind, namespace, name))
        if known is None:
            return None
        if kind not in self._watched and self._clock() - known.at > self._ttl:
            return None
        return known

    def put(self, obj: dict[str, Any]) -> None:
        """Store an object seen in a watch event or returned by a write, unless an newer one is known."""
        key = self.key_of(obj)
        meta = obj["metadata"]
        if "managedFields" in meta:  # never read here, and often the larger part of the metadata
            obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        with self._lock:
            current = self._known.get(key)
            if current is not None and current.obj is not None:
                old, new = _version(current.obj), _version(obj)
                if old is not None and new is not None and new < old:
                    return
            self._known[key] = Known(obj, self._clock())

    def absent(self, kind: str, namespace: str, name: str) -> None:
        """The object does not exist (a DELETED event, or a GET that found nothing)."""
        with self._lock:
            self._known[(kind, namespace, name)] = Known(None, self._clock())

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._known.pop((kind, namespace, name), None)
