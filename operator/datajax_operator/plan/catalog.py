"""TPU placement facts: accelerator labels, machine types, chips per host and HBM per generation.

`api.tpu` says which (generation, topology, machine type) the API accepts; this module says where such
a slice lands on GKE. Sources, per fact:
- accelerator labels (`cloud.google.com/gke-tpu-accelerator`) and machine types: GKE "Plan TPUs in GKE"
  and xpk `src/xpk/core/system_characteristics.py` (tpu-v5-lite-podslice / ct5lp-hightpu-*,
  tpu-v6e-slice / ct6e-standard-*, tpu-v5p-slice / ct5p-hightpu-4t, tpu7x / tpu7x-standard-*);
- chips per VM: the machine type's `-Nt` suffix (GKE machine type docs; xpk uses 4 for every multi-host
  slice and 1 for 1x1);
- HBM per chip: Cloud TPU system architecture pages (v5e 16 GB, v6e 32 GB, v5p 95 GiB, Ironwood 192 GiB).
"""

from dataclasses import dataclass
from typing import Final, Literal

from datajax_operator.api.tpu import PREVIEW_GENERATIONS, SLICE_SHAPES, topology_chips

Workload = Literal["Deployment", "LeaderWorkerSet"]

GB: Final = 10**9
GIB: Final = 2**30


@dataclass(frozen=True)
class GenerationFacts:
    """What is constant across every slice of one TPU generation."""

    accelerator: str
    hbm_bytes_per_chip: int
    preview: bool


GENERATIONS: Final[dict[str, GenerationFacts]] = {
    "v5e": GenerationFacts("tpu-v5-lite-podslice", 16 * GB, "v5e" in PREVIEW_GENERATIONS),
    "v6e": GenerationFacts("tpu-v6e-slice", 32 * GB, "v6e" in PREVIEW_GENERATIONS),
    "v5p": GenerationFacts("tpu-v5p-slice", 95 * GIB, "v5p" in PREVIEW_GENERATIONS),
    "tpu7x": GenerationFacts("tpu7x", 192 * GIB, "tpu7x" in PREVIEW_GENERATIONS),
}

CHIPS_PER_MACHINE: Final[dict[str, int]] = {
    "ct5lp-hightpu-1t": 1,
    "ct5lp-hightpu-4t": 4,
    "ct5lp-hightpu-8t": 8,
    "ct6e-standard-1t": 1,
    "ct6e-standard-4t": 4,
    "ct6e-standard-8t": 8,
    "ct5p-hightpu-4t": 4,
    "tpu7x-standard-1t": 1,
    "tpu7x-standard-4t": 4,
}


@dataclass(frozen=True)
class Placement:
    """Where one replica (one slice) runs."""

    generation: str
    accelerator: str
    topology: str
    chips: int
    hosts: int
    chips_per_host: int
    machine_type: str
    workload: Workload
    preview: bool

    def to_json(self) -> dict[str, object]:
        """The `placement` object of `datajax-operator plan -o json` (DESIGN §6)."""
        return {
            "generation": self.generation,
            "accelerator": self.accelerator,
            "topology": self.topology,
            "chips": self.chips,
            "hosts": self.hosts,
            "chipsPerHost": self.chips_per_host,
            "machineType": self.machine_type,
            "workload": self.workload,
        }


def place(generation: str, topology: str, machine_type: str | None = None) -> Placement | None:
    """The placement of a slice, or None when the API does not accept that combination."""
    machines = SLICE_SHAPES.get(generation, {}).get(topology)
    if not machines or (machine_type is not None and machine_type not in machines):
        return None
    machine = machine_type or machines[0]
    chips = topology_chips(topology)
    per_host = CHIPS_PER_MACHINE[machine]
    hosts = chips // per_host
    facts = GENERATIONS[generation]
    return Placement(
        generation=generation,
        accelerator=facts.accelerator,
        topology=topology,
        chips=chips,
        hosts=hosts,
        chips_per_host=per_host,
        machine_type=machine,
        workload="Deployment" if hosts == 1 else "LeaderWorkerSet",
        preview=facts.preview,
    )


def all_placements() -> list[Placement]:
    """Every placement the planner can produce, for docs and the catalog tests."""
    placements = []
    for generation, shapes in SLICE_SHAPES.items():
        for topology, machines in shapes.items():
            for machine in machines:
                placement = place(generation, topology, machine)
                if placement is not None:
                    placements.append(placement)
    return placements
