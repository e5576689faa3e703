"""The TPU vocabulary the API accepts: generations, their slice topologies and node-pool machine types.

This is API data, not placement logic: the CRD's CEL rules are generated from it so that the API server
rejects an illegal (generation, topology, machineType) at admission, and `plan.catalog` derives the
placement (accelerator label, chips per host, hosts, HBM) from the same table, so the two never disagree.

Sources: GKE "Plan TPUs in GKE" and the Cloud TPU v5e/v6e pages (topologies, machine types, single- vs
multi-host), and xpk `src/xpk/core/system_characteristics.py` (GKE accelerator labels, machine types and
3-D topologies of v5p and tpu7x). v5p and tpu7x carry only the power-of-two shapes a serving slice uses.
"""

from math import prod
from typing import Final, Literal

Generation = Literal["v5e", "v6e", "v5p", "tpu7x"]

GENERATIONS: Final[tuple[Generation, ...]] = ("v5e", "v6e", "v5p", "tpu7x")
PREVIEW_GENERATIONS: Final[frozenset[str]] = frozenset({"v5p", "tpu7x"})
"""Generations the planner places but that the serving stack has not been validated on yet."""

_2D_SHAPES: Final = ("4x4", "4x8", "8x8", "8x16", "16x16")
_3D_SHAPES: Final = (
    "2x2x1",
    "2x2x2",
    "2x2x4",
    "2x4x4",
    "4x4x4",
    "4x4x8",
    "4x8x8",
    "8x8x8",
    "8x8x16",
    "8x16x16",
)


def _two_d(prefix: str) -> dict[str, tuple[str, ...]]:
    """v5e and v6e share shapes: 1-, 4- and 8-chip single-host VMs, 4-chip VMs for multi-host slices.

    `2x4` is single-host on the 8-chip VM by default and two 4-chip hosts when that machine type is asked.
    """
    return {
        "1x1": (f"{prefix}-1t",),
        "2x2": (f"{prefix}-4t",),
        "2x4": (f"{prefix}-8t", f"{prefix}-4t"),
        **{shape: (f"{prefix}-4t",) for shape in _2D_SHAPES},
    }


SLICE_SHAPES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "v5e": _two_d("ct5lp-hightpu"),
    "v6e": _two_d("ct6e-standard"),
    "v5p": {shape: ("ct5p-hightpu-4t",) for shape in _3D_SHAPES},
    "tpu7x": {"1x1x1": ("tpu7x-standard-1t",), **{shape: ("tpu7x-standard-4t",) for shape in _3D_SHAPES}},
}
"""generation -> topology -> accepted GKE machine types, the default (used when none is given) first."""


def topology_chips(topology: str) -> int:
    """Chips in a slice: the product of the topology's dimensions (`4x4` -> 16, `2x2x2` -> 8)."""
    return prod(int(part) for part in topology.split("x"))


ALL_TOPOLOGIES: Final[tuple[str, ...]] = tuple(
    sorted({t for shapes in SLICE_SHAPES.values() for t in shapes}, key=lambda t: (topology_chips(t), t))
)
