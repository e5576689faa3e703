"""make_plan: a DataJaxModel and the operator config in, placement + mesh + cost + vLLM args out.

The wave spec (the JSON `datajax-export-wavespec` writes, read from the ConfigMap named by
`spec.plan.waveSpecRef` in the cluster or from `plan --wavespec FILE` offline) is an optional input:
the caller fetches and decodes it, so planning stays pure.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from datajax_operator.api.resource import DataJaxModel
from datajax_operator.plan.capacity import CapacityPlan, capacity_plan
from datajax_operator.plan.catalog import Placement, place
from datajax_operator.plan.checks import extra_args_problems, hbm_problems, head_problems, rule_problems
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.cost import CostPlan, estimate_cost
from datajax_operator.plan.mesh import MeshPlan, derive_mesh
from datajax_operator.plan.problems import PlanError, Problem
from datajax_operator.plan.serving import plan_serving, read_wave_spec
from datajax_operator.plan.storage import StoragePlan, plan_storage, storage_warnings
from datajax_operator.plan.vllm import vllm_args
from datajax_operator.plan.wavespec import Decision


@dataclass(frozen=True)
class Plan:
    """Everything derived from a valid spec; the renderer turns it into manifests."""

    served_name: str
    placement: Placement
    mesh: MeshPlan
    cost: CostPlan
    vllm_args: list[str]
    storage: StoragePlan
    decisions: tuple[Decision, ...] = ()
    """Each wave-spec-informed vLLM flag with its value, source and one-line reason."""
    warnings: tuple[Problem, ...] = field(default=())
    """Problems that do not stop serving (severity warning), e.g. a context shorter than p99 requests."""
    capacity: CapacityPlan | None = None
    """One slice's roofline against the ceiling's floor on its throughput."""

    def to_json(self, objects: list[dict[str, object]] | None = None) -> dict[str, object]:
        """The document `datajax-operator plan -o json` prints: the keys of DESIGN §6, plus `decisions`
        and `storage` (and, inside placement, mesh and cost, a few keys after DESIGN §6's own)."""
        return {
            "placement": self.placement.to_json(),
            "mesh": self.mesh.to_json(),
            "cost": self.cost.to_json(),
            "vllmArgs": list(self.vllm_args),
            "decisions": [
                {"flag": d.flag, "value": d.value, "source": d.source, "reason": d.reason}
                for d in self.decisions
            ],
            "capacity": self.capacity.to_json() if self.capacity is not None else None,
            "storage": self.storage.to_json(),
            "objects": list(objects or []),
        }


def make_plan(
    model: DataJaxModel, config: OperatorConfig, wave_spec: Mapping[str, Any] | None = None
) -> Plan:
    """Validate and derive the plan, raising PlanError with every problem found (not just the first).

    `wave_spec` is the decoded exporter JSON (None when the spec names none or it is unavailable);
    its derived values replace vLLM's defaults wherever the spec leaves a serving field unset.
    """
    spec = model.spec
    problems: list[Problem] = rule_problems(spec)
    if not problems_on(problems, "spec.serving.extraArgs"):  # the admission rule named it already
        problems += extra_args_problems(spec)
    placement = place(spec.tpu.generation, spec.tpu.topology, spec.tpu.machine_type)
    if placement is None and not problems_on(problems, "spec.tpu"):
        problems.append(Problem("spec.tpu.topology", "no TPU placement matches this generation and topology"))
    mesh = derive_mesh(spec.mesh, placement, spec.tpu) if placement is not None else None
    if placement is not None and mesh is not None and not problems_on(problems, "spec.mesh"):
        problems += head_problems(spec, mesh)
        problems += hbm_problems(spec, placement, mesh)
    cost = estimate_cost(spec, placement.chips if placement else 0, config)
    if isinstance(cost, Problem):
        problems.append(cost)
    parsed, wave_problems = read_wave_spec(wave_spec)
    problems += wave_problems
    serving = plan_serving(spec, placement, mesh, parsed) if placement and mesh else None
    warnings: list[Problem] = []
    for found in serving.problems if serving else ():
        if found.severity == "warning":
            warnings.append(found)
        elif not problems_on(problems, found.field):  # the same rule may already have named the field
            problems.append(found)
    if problems or placement is None or mesh is None or serving is None or isinstance(cost, Problem):
        raise PlanError(problems)
    served_name = spec.model.served_name or model.metadata.name
    args = vllm_args(spec, served_name, mesh, placement.hosts, serving)
    storage = plan_storage(model, config, placement, mesh, args)
    warnings += storage_warnings(model, storage)
    return Plan(
        served_name=served_name,
        placement=placement,
        mesh=mesh,
        cost=cost,
        vllm_args=args,
        storage=storage,
        decisions=serving.decisions,
        warnings=tuple(warnings),
        capacity=capacity_plan(spec, placement, mesh, cost),
    )


def problems_on(problems: list[Problem], prefix: str) -> bool:
    """Whether a problem already names a field under prefix (later checks would only repeat it)."""
    return any(p.field == prefix or p.field.startswith(f"{prefix}.") for p in problems)
