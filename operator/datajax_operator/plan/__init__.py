"""The pure planner: TPU catalog, placement, mesh, pre-flight checks, cost and vLLM arguments."""

from datajax_operator.plan.catalog import Placement, all_placements, place
from datajax_operator.plan.config import OperatorConfig, load_config
from datajax_operator.plan.cost import CostPlan
from datajax_operator.plan.mesh import MeshPlan
from datajax_operator.plan.planner import Plan, make_plan
from datajax_operator.plan.problems import PlanError, Problem

__all__ = [
    "CostPlan",
    "MeshPlan",
    "OperatorConfig",
    "Placement",
    "Plan",
    "PlanError",
    "Problem",
    "all_placements",
    "load_config",
    "make_plan",
    "place",
]
