"""The shape every cost action (``spec.cost.action``) has: what it does when a breach is established,
what it restores when the cost is established under the ceiling, and what it renders.

An action is one small object in its own module; ``status.actions.ACTIONS`` maps the spec's literal to
it. Adding an action is a new module here, one entry in that table, the literal in
``api.spec.Cost.action`` and its line in docs/cost-model.md; the judgement itself does not change.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from datajax_operator.status.conditions import Verdict


@dataclass(frozen=True)
class Enforcement:
    """What the cost actions have put in force, as recorded in ``status.costEvaluation``."""

    replicas: int | None = None
    """Slices while a ScaleDown is in effect (None: spec.replicas)."""
    scaled_down_at: datetime | None = None
    suspended: bool = False

    def but(self, **changes: object) -> "Enforcement":
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Action:
    """Something an action did in this pass, worth its own Event.

    ``key`` names the decision (the generation, the run it acted on, the change), so the same decision
    taken again, e.g. by a pass that re-decides it after an operator was killed between the workload
    apply and the status write, gives the same key, and its Event is posted once."""

    reason: str
    message: str
    warning: bool
    key: str | None = None
    """None: an Event with a generated name (an action whose repetition is harmless)."""


@dataclass(frozen=True)
class Situation:
    """What an action may look at when it decides."""

    spec_replicas: int
    generation: int
    run_since: datetime
    """Start of the established run the action responds to."""
    window: timedelta
    now: datetime
    figures: str
    """The figures in words, for the Event's message."""

    def key(self, change: str) -> str:
        return f"{self.generation}.{self.run_since:%Y%m%dT%H%M%SZ}.{change}"


class CostAction(Protocol):
    """One value of ``spec.cost.action``."""

    def on_breach(self, state: Enforcement, situation: Situation) -> tuple[Enforcement, tuple[Action, ...]]:
        """An Above run lasted a whole window (called at every such pass)."""
        ...

    def on_restore(self, state: Enforcement, situation: Situation) -> tuple[Enforcement, tuple[Action, ...]]:
        """A Below run lasted a whole window (called at every such pass)."""
        ...

    def replicas(self, state: Enforcement, spec_replicas: int) -> int:
        """The slices to render while ``state`` is in force."""
        ...

    def verdict(self, state: Enforcement, figures: str) -> Verdict | None:
        """A CostCeilingBreached verdict that overrides the run's own (None: the run decides)."""
        ...
