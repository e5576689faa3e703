"""Whether kopf peering has paused this operator, read from the peering object (a pure function).

kopf pauses its watches while a live peer of higher (or equal) priority is recorded in the peering
object, but work the operator starts on its own, the periodic pass of each model, knows nothing of
that pause: a standby replica would keep re-applying what the active one manages. That pass asks
this module first. The rule mirrors kopf's (``kopf._core.engines.peering``): a peer is live until its
``lastseen`` plus its ``lifetime``; a missing peering object pauses a replica that was told to peer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

DEFAULT_LIFETIME_SECONDS = 60
"""What kopf assumes for a peer that does not state its lifetime."""


POD_NAME_PRIORITIES = 1 << 30
"""Priorities derived from pod names lie in [1, 2**30): a person's `--priority` above them preempts
every in-cluster replica (e.g. a developer's operator run against the cluster)."""


def priority_from_name(name: str) -> int:
    """A stable priority of its own for each replica, from its pod name. kopf peering is not an
    election: a replica pauses while any live peer's priority is at least its own, so two replicas
    given the same number (the same Deployment template) pause each other for good. The pods of a
    Deployment have distinct names, whose hashes collide with odds of about 1 in 10**9 per pair."""
    digest = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")
    return 1 + digest % (POD_NAME_PRIORITIES - 1)


@dataclass(frozen=True)
class Peering:
    """This replica's place in a peering: the object's name, kopf's identity of us, our priority."""

    name: str
    identity: str
    priority: int
    namespaces: tuple[str, ...]
    """Namespaced KopfPeering objects to consult; empty: the ClusterKopfPeering."""


def _deadline(info: dict[str, Any]) -> datetime | None:
    try:
        lastseen = datetime.fromisoformat(str(info["lastseen"]))
        lifetime = int(info.get("lifetime", DEFAULT_LIFETIME_SECONDS))
    except (KeyError, TypeError, ValueError):
        return None
    return lastseen + timedelta(seconds=lifetime)


def paused_by_peers(peering_object: dict[str, Any] | None, peering: Peering, now: datetime) -> bool:
    """True when another live peer has a priority at least ours (kopf pauses us then), or when the
    peering object does not exist. ``now`` must be timezone-aware (kopf writes UTC offsets)."""
    if peering_object is None:
        return True
    status = peering_object.get("status") or {}
    for identity, info in status.items():
        if identity == peering.identity or not isinstance(info, dict):
            continue
        deadline = _deadline(info)
        if deadline is None or deadline.tzinfo is None or deadline <= now:
            continue
        if int(info.get("priority", 0)) >= peering.priority:
            return True
    return False
