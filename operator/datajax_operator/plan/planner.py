"""make_plan: a DataJaxModel and the operator config in, placement + mesh + cost + vLLM args out."""

from dataclasses import dataclass

from datajax_operator.api.resource import DataJaxModel
from datajax_operator.plan.catalog import Placement, place
from datajax_operator.plan.checks import hbm_problems, head_problems, rule_problems
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.cost import CostPlan, estimate_cost
from datajax_operator.plan.mesh import MeshPlan, derive_mesh
from datajax_operator.plan.problems import PlanError, Problem
from datajax_operator.plan.vllm import vllm_args


@dataclass(frozen=True)
class Plan:
    """Everything derived from a valid spec; the renderer turns it into manifests."""

    served_name: str
    placement: Placement
    mesh: MeshPlan
    cost: CostPlan
    vllm_args: list[str]

    def to_json(self, objects: list[dict[str, object]] | None = None) -> dict[str, object]:
        """The document `datajax-operator plan -o json` prints, keys exactly as DESIGN §6."""
        return {
            "placement": self.placement.to_json(),
            "mesh": self.mesh.to_json(),
            "cost": self.cost.to_json(),
            "vllmArgs": list(self.vllm_args),
            "objects": list(objects or []),
        }


def make_plan(model: DataJaxModel, config: OperatorConfig) -> Plan:
    """Validate and derive the plan, raising PlanError with every problem found (not just the first)."""
    spec = model.spec
    problems: list[Problem] = rule_problems(spec)
    placement = place(spec.tpu.generation, spec.tpu.topology, spec.tpu.machine_type)
    if placement is None and not problems_on(problems, "spec.tpu"):
        problems.append(Problem("spec.tpu.topology", "no TPU placement matches this generation and topology"))
    mesh = derive_mesh(spec.mesh, placement.chips) if placement is not None else None
    if placement is not None and mesh is not None and not problems_on(problems, "spec.mesh"):
        problems += head_problems(spec, mesh)
        problems += hbm_problems(spec, placement, mesh)
    cost = estimate_cost(spec, placement.chips if placement else 0, config)
    if isinstance(cost, Problem):
        problems.append(cost)
    if problems or placement is None or mesh is None or isinstance(cost, Problem):
        raise PlanError(problems)
    served_name = spec.model.served_name or model.metadata.name
    return Plan(
        served_name=served_name,
        placement=placement,
        mesh=mesh,
        cost=cost,
        vllm_args=vllm_args(spec, served_name, mesh, placement.hosts),
    )


def problems_on(problems: list[Problem], prefix: str) -> bool:
    """Whether a problem already names a field under prefix (later checks would only repeat it)."""
    return any(p.field == prefix or p.field.startswith(f"{prefix}.") for p in problems)
