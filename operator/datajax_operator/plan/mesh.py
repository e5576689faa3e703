"""The JAX mesh each vLLM engine process builds, and how a replica's processes are arranged.

tpu-inference builds a ('data', 'model') mesh in every engine process. With `--data-parallel-size`
dp > 1, `vllm serve` runs one engine process per data-parallel rank (tpu-inference
`tpu_inference/platforms/tpu_platform.py` `_resolve_multiprocess_dp` turns TPU_MULTIPROCESS_DP on for
online serving), each over its own tp devices: every process builds a (1, tp) mesh, and no process
builds the (dp, tp) mesh a single SPMD program would. With `--pipeline-parallel-size` pp > 1 each
stage is its own set of workers over devices/pp devices.

On a multi-host slice the default is one pipeline stage per host with tensor parallelism inside the
host (tpu.parallelism PipelineAcrossHosts): tpu-inference's support matrix
(`support_matrices/nightly/v6e/default/parallelism_support_matrix.csv`, also v7x, and
`docs/includes/parallelism.md`, both read at vllm-project/tpu-inference b8692ff) marks multi-host PP
passing and multi-host TP untested.
TensorAcrossHosts keeps tp over every device of the slice, as tpu-inference's own multi-host GKE
example does (`examples/offload/gke/benchmarks/multi-host/deploy-baseline.yaml`, tp 16 on a tpu7x
2x2x2).
"""

from dataclasses import dataclass

from datajax_operator.api.rules import pipeline_stages
from datajax_operator.api.spec import TPU, Mesh
from datajax_operator.plan.catalog import Placement

AXES = ("data", "model")


@dataclass(frozen=True)
class MeshPlan:
    """The parallel degrees vLLM is started with and the mesh each of its engine processes builds."""

    tensor_parallel: int
    data_parallel: int
    pipeline_parallel: int = 1

    @property
    def axes(self) -> tuple[str, ...]:
        return AXES

    @property
    def shape(self) -> tuple[int, ...]:
        """The mesh one engine process builds: (1, tp) under multi-process data parallelism."""
        return (1, self.tensor_parallel)

    @property
    def engines(self) -> int:
        """Engine processes per replica (one per data-parallel rank), each holding a copy of the weights
        spread over its pipeline stages."""
        return self.data_parallel

    @property
    def devices(self) -> int:
        return self.tensor_parallel * self.data_parallel * self.pipeline_parallel

    def describe(self) -> str:
        """One line for `plan` and the status: the replica's engines, stages and per-process mesh."""
        stages = f" x {self.pipeline_parallel} pipeline stages" if self.pipeline_parallel > 1 else ""
        return (
            f"{self.engines} engine(s){stages}, each process a ('data', 'model') mesh of (1, "
            f"{self.tensor_parallel}): {self.devices} devices"
        )

    def to_json(self) -> dict[str, object]:
        """The `mesh` object of `datajax-operator plan -o json` (DESIGN §6), plus the replica structure."""
        return {
            "axes": list(self.axes),
            "shape": list(self.shape),
            "tensorParallel": self.tensor_parallel,
            "dataParallel": self.data_parallel,
            "pipelineParallel": self.pipeline_parallel,
            "engines": self.engines,
            "structure": self.describe(),
        }


def derive_mesh(mesh: Mesh | None, placement: Placement, tpu: TPU) -> MeshPlan:
    """Degrees for a slice: the spec's mesh within each stage when given, else data=1, model=stage devices.

    The stages are the admission rule's (`api.rules.pipeline_stages`: one per host under
    PipelineAcrossHosts, the multi-host default), and that rule, `mesh-product-is-stage-devices`, has
    already checked the spec's mesh multiplies to the devices of one stage.
    """
    pp = pipeline_stages(tpu) or 1
    if mesh is None:
        dp, tp = 1, placement.devices // pp
    else:
        sizes = dict(zip(mesh.axes, mesh.shape, strict=False))
        dp, tp = sizes.get("data", 1), sizes.get("model", 1)
    return MeshPlan(tensor_parallel=tp, data_parallel=dp, pipeline_parallel=pp)
