"""The cost actions of ``spec.cost.action``, one module each, looked up by the spec's literal."""

from typing import Final

from datajax_operator.status.actions.alert import Alert
from datajax_operator.status.actions.base import Action, CostAction, Enforcement, Situation
from datajax_operator.status.actions.scale_down import ScaleDown
from datajax_operator.status.actions.suspend import Suspend

ACTIONS: Final[dict[str, CostAction]] = {"Alert": Alert(), "ScaleDown": ScaleDown(), "Suspend": Suspend()}
"""Every value ``api.spec.Cost.action`` allows (a test checks the two agree)."""

__all__ = ["ACTIONS", "Action", "CostAction", "Enforcement", "Situation"]
