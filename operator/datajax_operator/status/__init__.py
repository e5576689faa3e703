"""Pure status evaluation: observations + plan + now -> conditions and status (no I/O here)."""

from datajax_operator.status.actions import Action
from datajax_operator.status.aggregate import ModelFigures, aggregate
from datajax_operator.status.autoscale import ScaleDecision, decide_scale
from datajax_operator.status.conditions import (
    Transition,
    Verdict,
    actionable_transitions,
    settle,
    transitions,
)
from datajax_operator.status.evaluate import Evaluation, check_reason, evaluate
from datajax_operator.status.judge import Judgement, judge
from datajax_operator.status.observations import (
    Observations,
    SidecarFigures,
    SidecarScrape,
    WorkloadObservation,
)
from datajax_operator.status.recent import Recent

__all__ = [
    "Action",
    "Evaluation",
    "Judgement",
    "ModelFigures",
    "Observations",
    "Recent",
    "ScaleDecision",
    "SidecarFigures",
    "SidecarScrape",
    "Transition",
    "Verdict",
    "WorkloadObservation",
    "actionable_transitions",
    "aggregate",
    "check_reason",
    "decide_scale",
    "evaluate",
    "judge",
    "settle",
    "transitions",
]
