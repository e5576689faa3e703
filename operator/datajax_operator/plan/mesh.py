"""The JAX mesh vLLM's TPU backend builds: axes ('data', 'model'), shape (dp, tp).

tpu-inference takes tp from --tensor-parallel-size and dp from --data-parallel-size and always
builds the 2-D mesh in that axis order, so an explicit mesh in any axis order is normalised to it.
"""

from dataclasses import dataclass

from datajax_operator.api.spec import Mesh

AXES = ("data", "model")


@dataclass(frozen=True)
class MeshPlan:
    """Mesh axes and shape, with the parallel degrees vLLM is started with."""

    axes: tuple[str, ...]
    shape: tuple[int, ...]
    tensor_parallel: int
    data_parallel: int

    def to_json(self) -> dict[str, object]:
        """The `mesh` object of `datajax-operator plan -o json` (DESIGN §6)."""
        return {
            "axes": list(self.axes),
            "shape": list(self.shape),
            "tensorParallel": self.tensor_parallel,
            "dataParallel": self.data_parallel,
        }


def derive_mesh(mesh: Mesh | None, chips: int) -> MeshPlan:
    """The mesh for a slice of `chips` chips: the spec's when given, else data=1, model=chips."""
    if mesh is None:
        dp, tp = 1, chips
    else:
        sizes = dict(zip(mesh.axes, mesh.shape, strict=False))
        dp, tp = sizes.get("data", 1), sizes.get("model", 1)
    return MeshPlan(axes=AXES, shape=(dp, tp), tensor_parallel=tp, data_parallel=dp)
