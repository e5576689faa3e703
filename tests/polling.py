"""Waiting in tests: poll until something is true, or fail saying what did not happen.

The one poll loop of the test tiers (integration, chart, e2e). A wait ends on the condition itself,
never on a fixed sleep; ``abandon`` stops early when waiting longer cannot help (the process that
should act has exited) and ``explain`` adds what a reader needs to debug the failure (a log tail).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "condition",
    *,
    every: float = 0.2,
    abandon: Callable[[], bool] | None = None,
    explain: Callable[[], str] | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline or (abandon is not None and abandon()):
            detail = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(every)


def wait_for_passes(
    passes: Callable[[], float], more: int = 2, timeout: float = 30.0, what: str = ""
) -> None:
    """Return once ``more`` passes have completed beyond those done when called (``passes`` reads the
    operator's per-model pass counter). How a test shows that something did NOT happen: whatever
    the operator would do by now, a whole pass that started after this call has had the chance to."""
    start = passes()
    wait_for(lambda: passes() >= start + more, timeout, f"{more} more operator passes{what and ' ' + what}")
