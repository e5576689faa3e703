"""``Alert``: the condition and its Events only; the workload is never touched."""

from datajax_operator.status.actions.base import Action, Enforcement, Situation
from datajax_operator.status.conditions import Verdict


class Alert:
    def on_breach(self, state: Enforcement, situation: Situation) -> tuple[Enforcement, tuple[Action, ...]]:
        return state, ()

    def on_restore(self, state: Enforcement, situation: Situation) -> tuple[Enforcement, tuple[Action, ...]]:
        return state, ()

    def replicas(self, state: Enforcement, spec_replicas: int) -> int:
        return spec_replicas

    def verdict(self, state: Enforcement, figures: str) -> Verdict | None:
        return None
