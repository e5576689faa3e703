"""The TPU catalog: every (generation, topology) placement of DESIGN §4, and the table's invariants."""

import pytest

from datajax_operator.api.tpu import PREVIEW_GENERATIONS, SLICE_SHAPES, topology_chips
from datajax_operator.plan import all_placements, place

# (generation, topology, machine type or None) -> accelerator, machine type, chips/host, hosts, workload
EXPECTED = [
    ("v5e", "1x1", None, "tpu-v5-lite-podslice", "ct5lp-hightpu-1t", 1, 1, "Deployment"),
    ("v5e", "2x2", None, "tpu-v5-lite-podslice", "ct5lp-hightpu-4t", 4, 1, "Deployment"),
    ("v5e", "2x4", None, "tpu-v5-lite-podslice", "ct5lp-hightpu-8t", 8, 1, "Deployment"),
    ("v5e", "2x4", "ct5lp-hightpu-4t", "tpu-v5-lite-podslice", "ct5lp-hightpu-4t", 4, 2, "LeaderWorkerSet"),
    ("v5e", "4x4", None, "tpu-v5-lite-podslice", "ct5lp-hightpu-4t", 4, 4, "LeaderWorkerSet"),
    ("v5e", "4x8", None, "tpu-v5-lite-podslice", "ct5lp-hightpu-4t", 4, 8, "LeaderWorkerSet"),
    ("v5e", "8x8", None, "tpu-v5-lite-podslice", "ct5lp-hightpu-4t", 4, 16, "LeaderWorkerSet"),
    ("v5e", "8x16", None, "tpu-v5-lite-podslice", "ct5lp-hightpu-4t", 4, 32, "LeaderWorkerSet"),
    ("v5e", "16x16", None, "tpu-v5-lite-podslice", "ct5lp-hightpu-4t", 4, 64, "LeaderWorkerSet"),
    ("v6e", "1x1", None, "tpu-v6e-slice", "ct6e-standard-1t", 1, 1, "Deployment"),
    ("v6e", "2x2", None, "tpu-v6e-slice", "ct6e-standard-4t", 4, 1, "Deployment"),
    ("v6e", "2x4", None, "tpu-v6e-slice", "ct6e-standard-8t", 8, 1, "Deployment"),
    ("v6e", "2x4", "ct6e-standard-4t", "tpu-v6e-slice", "ct6e-standard-4t", 4, 2, "LeaderWorkerSet"),
    ("v6e", "4x4", None, "tpu-v6e-slice", "ct6e-standard-4t", 4, 4, "LeaderWorkerSet"),
    ("v6e", "4x8", None, "tpu-v6e-slice", "ct6e-standard-4t", 4, 8, "LeaderWorkerSet"),
    ("v6e", "8x8", None, "tpu-v6e-slice", "ct6e-standard-4t", 4, 16, "LeaderWorkerSet"),
    ("v6e", "8x16", None, "tpu-v6e-slice", "ct6e-standard-4t", 4, 32, "LeaderWorkerSet"),
    ("v6e", "16x16", None, "tpu-v6e-slice", "ct6e-standard-4t", 4, 64, "LeaderWorkerSet"),
    ("v5p", "2x2x1", None, "tpu-v5p-slice", "ct5p-hightpu-4t", 4, 1, "Deployment"),
    ("v5p", "2x2x2", None, "tpu-v5p-slice", "ct5p-hightpu-4t", 4, 2, "LeaderWorkerSet"),
    ("v5p", "4x4x4", None, "tpu-v5p-slice", "ct5p-hightpu-4t", 4, 16, "LeaderWorkerSet"),
    ("tpu7x", "1x1x1", None, "tpu7x", "tpu7x-standard-1t", 1, 1, "Deployment"),
    ("tpu7x", "2x2x1", None, "tpu7x", "tpu7x-standard-4t", 4, 1, "Deployment"),
    ("tpu7x", "2x2x2", None, "tpu7x", "tpu7x-standard-4t", 4, 2, "LeaderWorkerSet"),
]


@pytest.mark.parametrize(
    ("gen", "topology", "machine", "accel", "mtype", "per_host", "hosts", "workload"), EXPECTED
)
def test_placement_table(  # noqa: PLR0917 (one parameter per column of the table)
    gen: str,
    topology: str,
    machine: str | None,
    accel: str,
    mtype: str,
    per_host: int,
    hosts: int,
    workload: str,
) -> None:
    p = place(gen, topology, machine)
    assert p is not None
    assert (p.accelerator, p.machine_type, p.chips_per_host, p.hosts, p.workload) == (
        accel,
        mtype,
        per_host,
        hosts,
        workload,
    )
    assert p.chips == topology_chips(topology)


def test_v5e_and_v6e_offer_exactly_the_design_topologies() -> None:
    design = ["1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16"]
    assert list(SLICE_SHAPES["v5e"]) == design
    assert list(SLICE_SHAPES["v6e"]) == design


@pytest.mark.parametrize(
    ("gen", "topology", "machine"),
    [("v5e", "2x2x1", None), ("v6e", "3x3", None), ("v5p", "2x2", None), ("v6e", "4x4", "ct6e-standard-8t")],
)
def test_illegal_combinations_have_no_placement(gen: str, topology: str, machine: str | None) -> None:
    assert place(gen, topology, machine) is None


def test_every_placement_is_consistent() -> None:
    placements = all_placements()
    assert len(placements) == sum(len(ms) for shapes in SLICE_SHAPES.values() for ms in shapes.values())
    for p in placements:
        assert p.hosts * p.chips_per_host == p.chips
        assert (p.workload == "Deployment") == (p.hosts == 1)
        assert p.preview == (p.generation in PREVIEW_GENERATIONS)
        assert p.machine_type.endswith(f"-{p.chips_per_host}t")


def test_preview_generations_are_v5p_and_tpu7x() -> None:
    assert {"v5p", "tpu7x"} == PREVIEW_GENERATIONS
    assert all(len(t.split("x")) == 3 for gen in ("v5p", "tpu7x") for t in SLICE_SHAPES[gen])
