"""Pure status evaluation: observations + plan + now -> conditions and status (no I/O here)."""

from datajax_operator.status.conditions import Transition, Verdict, settle, transitions
from datajax_operator.status.evaluate import Evaluation, check_reason, evaluate
from datajax_operator.status.observations import Observations, WorkloadObservation

__all__ = [
    "Evaluation",
    "Observations",
    "Transition",
    "Verdict",
    "WorkloadObservation",
    "check_reason",
    "evaluate",
    "settle",
    "transitions",
]
