"""``ScaleDown``: one slice fewer per window while the breach lasts, never below 1; back to
``spec.replicas`` once the cost stayed under the ceiling for a whole window."""

from datajax_operator.status.actions.base import Action, Enforcement, Situation
from datajax_operator.status.conditions import Verdict


class ScaleDown:
    def on_breach(self, state: Enforcement, situation: Situation) -> tuple[Enforcement, tuple[Action, ...]]:
        current = situation.spec_replicas if state.replicas is None else state.replicas
        last = state.scaled_down_at
        if current <= 1 or (last is not None and situation.now - last < situation.window):
            return state, ()
        fewer = current - 1
        action = Action(
            "ScaledDown",
            f"cost.action ScaleDown: {current} -> {fewer} slices; {situation.figures}",
            warning=True,
            key=situation.key(f"{current}-{fewer}"),
        )
        return state.but(replicas=fewer, scaled_down_at=situation.now), (action,)

    def on_restore(self, state: Enforcement, situation: Situation) -> tuple[Enforcement, tuple[Action, ...]]:
        if state.replicas is None:
            return state, ()
        action = Action(
            "ScaledUp",
            f"cost under the ceiling for a whole window: back to spec.replicas {situation.spec_replicas} "
            f"slices (from {state.replicas}); {situation.figures}",
            warning=False,
            key=situation.key(f"{state.replicas}-{situation.spec_replicas}"),
        )
        return state.but(replicas=None, scaled_down_at=None), (action,)

    def replicas(self, state: Enforcement, spec_replicas: int) -> int:
        return spec_replicas if state.replicas is None else min(state.replicas, spec_replicas)

    def verdict(self, state: Enforcement, figures: str) -> Verdict | None:
        return None
