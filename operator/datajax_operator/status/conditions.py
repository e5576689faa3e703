"""Condition bookkeeping in the metav1.Condition way: one entry per type, and a transition time that
moves only when the status does (a changed message alone is not a transition)."""

from dataclasses import dataclass
from datetime import datetime

from datajax_operator.api.constants import COST_CEILING_BREACHED, LATENCY_SLO_BREACHED, READY, SPEC_VALID
from datajax_operator.api.status import Condition, ConditionStatus

_WARNING_REASONS = frozenset(
    {"LeaderWorkerSetCRDMissing", "ChildNotOwned", "Mismatch", "DoesNotFit", "GateFailed"}
)
"""False conditions that need a person even when nothing was True before (DoesNotFit and GateFailed:
the compile gate holds the workload, ``status.gate``)."""


@dataclass(frozen=True)
class Verdict:
    """A condition as evaluated now, before its transition time is settled."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


def settle(
    verdicts: list[Verdict], previous: list[Condition], generation: int | None, now: datetime
) -> list[Condition]:
    """The conditions to store, in verdict order: each keeps the previous lastTransitionTime of its
    type when the status is unchanged, else takes ``now``."""
    before = {c.type: c for c in previous}
    settled = []
    for verdict in verdicts:
        old = before.get(verdict.type)
        since = old.last_transition_time if old is not None and old.status == verdict.status else now
        settled.append(
            Condition(
                type=verdict.type,
                status=verdict.status,
                reason=verdict.reason,
                message=verdict.message,
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return settled


BREACHES = (COST_CEILING_BREACHED, LATENCY_SLO_BREACHED)


@dataclass(frozen=True)
class Transition:
    """A condition whose status changed (or appeared)."""

    condition: Condition
    previous: Condition | None

    @property
    def event_type(self) -> str:
        """Warning when something broke (a True condition went False), when the spec is rejected, or
        when the cluster lacks an API the model needs; Normal for progress. A breach condition is the
        other way round: True is the Warning."""
        if self.condition.type in BREACHES:
            return "Warning" if self.condition.status == "True" else "Normal"
        if self.condition.status != "False":
            return "Normal"
        if (
            self.previous is not None and self.previous.status == "True"
        ) or self.condition.type == SPEC_VALID:
            return "Warning"
        return "Warning" if self.condition.reason in _WARNING_REASONS else "Normal"

    @property
    def actionable(self) -> bool:
        """Whether a person acts on it, so it is worth an Event: every Warning, and the news that ends
        one — the model is Ready, a breach is over, a rejected spec is accepted, a missing API or a
        foreign child is gone. Not a condition's birth in a state nobody acts on (a new model's
        ``MetricsAvailable=False NoEndpoints``, ``CostCeilingBreached=Unknown NoMetrics``...), nor
        progress the Ready Event already tells (``WorkloadAvailable=True``)."""
        if self.event_type == "Warning":
            return True
        before = self.previous
        if before is None:
            return False
        if self.condition.type in BREACHES:
            return before.status == "True"
        if self.condition.type in (READY, SPEC_VALID):
            return self.condition.status == "True"
        return before.reason in _WARNING_REASONS


def transitions(previous: list[Condition], current: list[Condition]) -> list[Transition]:
    """The conditions whose status changed (or that appeared) between two statuses."""
    before = {c.type: c for c in previous}
    return [
        Transition(condition=c, previous=before.get(c.type))
        for c in current
        if (old := before.get(c.type)) is None or old.status != c.status
    ]


def actionable_transitions(previous: list[Condition], current: list[Condition]) -> list[Transition]:
    """The transitions worth an Event (see ``Transition.actionable``)."""
    return [t for t in transitions(previous, current) if t.actionable]
