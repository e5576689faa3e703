"""``Suspend``: 0 slices once a breach is established, until the spec changes (a new generation drops
the state of every action, which is how a person resumes the model)."""

from datajax_operator.api.constants import COST_CEILING_BREACHED
from datajax_operator.status.actions.base import Action, Enforcement, Situation
from datajax_operator.status.conditions import Verdict

SUSPENDED = "Suspended"


class Suspend:
    def on_breach(self, state: Enforcement, situation: Situation) -> tuple[Enforcement, tuple[Action, ...]]:
        if state.suspended:
            return state, ()
        action = Action(
            SUSPENDED,
            f"cost.action Suspend: 0 slices; {situation.figures}",
            warning=True,
            key=situation.key("suspend"),
        )
        return state.but(suspended=True), (action,)

    def on_restore(self, state: Enforcement, situation: Situation) -> tuple[Enforcement, tuple[Action, ...]]:
        return state, ()  # only a spec change resumes

    def replicas(self, state: Enforcement, spec_replicas: int) -> int:
        return 0 if state.suspended else spec_replicas

    def verdict(self, state: Enforcement, figures: str) -> Verdict | None:
        if not state.suspended:
            return None
        return Verdict(
            COST_CEILING_BREACHED,
            "True",
            SUSPENDED,
            f"{figures}. Suspended by cost.action Suspend: the workload runs 0 slices. To resume, change "
            "anything in the spec (e.g. raise cost.ceilingUSDPerMillionTokens, or set cost.action to "
            "Alert): a new generation restores spec.replicas and judges the cost afresh.",
        )
