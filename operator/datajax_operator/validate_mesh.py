"""`datajax-operator validate-mesh`: check the plan's mesh and PartitionSpecs on CPU devices before paying.

The plan fixes the slice (chips, hosts) and tpu-inference's mesh ('data', 'model') = (dp, tp). Without a
bundle the check runs the built-in attention projection on that mesh; with the DataJAX plan bundle it
runs the bundle's own validation case (or the built-in one with the bundle's PartitionSpecs) on the
bundle's mesh, which must span the slice. Either way one JAX process per host starts on 127.0.0.1
(`datajax_runtime.spmd.launcher`), so a multi-host slice is checked with real cross-host collectives.

Outside the pure layers: it starts processes. It never imports JAX itself (the children do).
"""

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

from datajax_operator.plan.planner import Plan
from datajax_runtime.bundle import BundleError, PlanBundle, load_bundle
from datajax_runtime.spmd.case import CaseError, MeshCase, attention_projection_case, case_from_bundle
from datajax_runtime.spmd.launcher import Report, validate

MESH_EXTRA_HINT = "pip install 'datajax-operator[mesh]' (JAX on the CPU)"


class MeshInputError(ValueError):
    """The bundles cannot be turned into a validation case for this plan; the message says why."""


@dataclass(frozen=True)
class MeshRun:
    """What is validated: the case every host runs (unless `host_cases` gives a host its own)."""

    case: MeshCase
    hosts: int
    host_cases: dict[int, MeshCase]
    source: str


def jax_available() -> bool:
    """Whether the children can import JAX; checked first so the user reads one line, not a traceback."""
    return importlib.util.find_spec("jax") is not None


def _describe(case: MeshCase) -> str:
    return " x ".join(f"{a}={s}" for a, s in zip(case.axes, case.shape, strict=True))


def _bundle_case(bundle: PlanBundle, path: str, plan: Plan) -> MeshCase:
    try:
        case = case_from_bundle(bundle)
    except CaseError as err:
        raise MeshInputError(f"plan bundle {path}: {err}") from None
    p, stages = plan.placement, plan.mesh.pipeline_parallel
    devices = p.devices // stages
    if case.devices != devices:
        per_stage = f" per pipeline stage ({stages} stages)" if stages > 1 else ""
        raise MeshInputError(
            f"plan bundle {path}: its mesh {_describe(case)} spans {case.devices} devices, but the plan's "
            f"{p.generation} {p.topology} slice has {devices} devices{per_stage}"
        )
    return case


def mesh_run(plan: Plan, bundle_paths: Sequence[str] = ()) -> MeshRun:
    """The case to validate for a plan: built-in, one bundle for every host, or one bundle per host.

    One bundle per host is how each host's mount would have it; hosts that load different bundles must
    be caught by the cross-host check rather than serve different shardings.
    """
    hosts = plan.placement.hosts
    # Each pipeline stage builds its own mesh over its own hosts (one host per stage under the multi-host
    # default, tpu.parallelism PipelineAcrossHosts): one stage is what a mesh check can run.
    stage_hosts = hosts // plan.mesh.pipeline_parallel
    if not bundle_paths:
        case = attention_projection_case(plan.mesh.data_parallel, plan.mesh.tensor_parallel)
        return MeshRun(case, stage_hosts, {}, "built-in attention projection")
    if len(bundle_paths) not in (1, hosts):
        raise MeshInputError(
            f"give one --bundle for every host or exactly one per host ({hosts}), not {len(bundle_paths)}"
        )
    cases = []
    for path in bundle_paths:
        try:
            cases.append(_bundle_case(load_bundle(path), path, plan))
        except BundleError as err:
            raise MeshInputError(f"plan bundle {path}: {err}") from None
    host_cases = {host: c for host, c in enumerate(cases) if c != cases[0]}
    if stage_hosts != hosts and host_cases:
        raise MeshInputError(
            f"the {hosts} hosts run {plan.mesh.pipeline_parallel} pipeline stages: give one --bundle for "
            "every host, not one per host"
        )
    return MeshRun(cases[0], stage_hosts, host_cases, f"plan bundle {bundle_paths[0]}")


def run(mesh: MeshRun, timeout: float = 180.0) -> Report:
    """Start the hosts' JAX processes on 127.0.0.1 and merge their verdicts."""
    return validate(mesh.case, mesh.hosts, host_cases=mesh.host_cases, timeout=timeout)


def summary(name: str, plan: Plan, mesh: MeshRun, report: Report) -> str:
    """One line: what was checked, on how many processes, and the verdict."""
    p = plan.placement
    verdict = "ok" if report.ok else "MIS-SHARDED"
    return (
        f"{name}: {p.generation} {p.topology}, mesh ({_describe(mesh.case)}) from {mesh.source}, "
        f"{report.hosts} host process(es) x {report.devices // report.hosts} CPU devices: "
        f"{verdict} in {report.seconds:.1f}s"
    )
