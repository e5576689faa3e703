"""Summarise py-spy's collapsed stacks (``--format raw --nolineno``) into where the time goes.

Each line is ``frame;frame;...;frame COUNT`` with frames like ``function (path/file.py)``, root first.
Two views: *stages* (inclusive share of samples whose stack passes through a frame of ours or of the
framework, first match from the leaf up decides) and the top *self* frames (where the CPU actually is).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

# (stage, path substring, function or ""), checked from the leaf towards the root; the first match
# wins, so a JSON decode inside kube._request counts as an API call, one inside kopf as kopf. pydantic's
# core is compiled (no Python frames), so its time shows in the calling function.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("reconcile: plan (pydantic validate, make_plan)", "datajax_operator/reconcile.py", "_plan"),
    ("reconcile: status evaluate", "datajax_operator/reconcile.py", "_previous_status"),
    ("reconcile: status evaluate", "datajax_operator/reconcile.py", "_status_document"),
    ("reconcile: plan (pydantic validate, make_plan)", "datajax_operator/plan/", ""),
    ("reconcile: plan (pydantic validate, make_plan)", "datajax_operator/api/", ""),
    ("reconcile: render children", "datajax_operator/render/", ""),
    ("reconcile: status evaluate", "datajax_operator/status/", ""),
    ("reconcile: API calls (kubernetes client, urllib3, TLS, JSON)", "datajax_operator/kube.py", ""),
    ("reconcile: other", "datajax_operator/reconcile.py", ""),
    ("operator metrics", "datajax_operator/metrics.py", ""),
    ("handlers (locks, thread hand-off)", "datajax_operator/handlers.py", ""),
    ("kopf: logging", "logging/", ""),
    ("kopf: watch, queue, dispatch, patch", "kopf/", ""),
    ("aiohttp (kopf's HTTP)", "aiohttp/", ""),
    ("asyncio event loop", "asyncio/", ""),
)


def _stage(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, where, function in STAGES:
            if where in frame and (not function or frame.startswith(function + " (")):
                return name
    return "other"


def _frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rstrip().rpartition(" ")
    return stack.split(";"), int(count)


def summarise(path: Path, top: int = 15) -> dict[str, object]:
    stages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        frames, count = _frames(line)
        total += count
        own[_short(frames[-1])] += count
        stages[_stage(frames)] += count
    return {
        "samples": total,
        "stages": [{"stage": name, "share": round(count / total, 3)} for name, count in stages.most_common()]
        if total
        else [],
        "self_top": [
            {"frame": frame, "share": round(count / total, 3)} for frame, count in own.most_common(top)
        ]
        if total
        else [],
    }


def _short(frame: str) -> str:
    """``function (.../site-packages/pkg/mod.py)`` -> ``function (pkg/mod.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "lib/python3.11/", "operator/", "runtime_image/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name
