"""Where a slice lands on GKE: placement derived from the TPU catalog record of its generation.

`api.tpu` loads the catalog (`api/tpu_catalog.json`, one record per generation, each fact with its
source) and says which (generation, topology, machine type) the API accepts; this module turns one
such triple into a placement: accelerator label, machine type, hosts, chips and JAX devices per host,
and HBM per device (a TPU7x chip is two JAX devices of half the chip's HBM each).
"""

from dataclasses import dataclass
from typing import Final, Literal

from datajax_operator.api.tpu import CATALOG, SLICE_SHAPES, GenerationRecord, topology_chips

Workload = Literal["Deployment", "LeaderWorkerSet"]

GB: Final = 10**9
GIB: Final = 2**30


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
    devices_per_chip: int
    hbm_bytes_per_device: int
    ambiguous_topology: bool
    """The generation offers this topology on more than one machine type (v5e/v6e 2x4: one 8-chip VM or
    two 4-chip VMs, both labelled gke-tpu-topology=2x4), so the pods must also select the machine type."""

    @property
    def devices(self) -> int:
        """JAX devices in the slice: what tensor x data x pipeline parallelism must multiply to."""
        return self.chips * self.devices_per_chip

    @property
    def devices_per_host(self) -> int:
        return self.chips_per_host * self.devices_per_chip

    def to_json(self) -> dict[str, object]:
        """The `placement` object of `datajax-operator plan -o json`: DESIGN §6's keys, then JAX devices
        and whether the pods select the machine type."""
        return {
            "generation": self.generation,
            "accelerator": self.accelerator,
            "topology": self.topology,
            "chips": self.chips,
            "hosts": self.hosts,
            "chipsPerHost": self.chips_per_host,
            "machineType": self.machine_type,
            "workload": self.workload,
            "devicesPerChip": self.devices_per_chip,
            "devices": self.devices,
            "selectsMachineType": self.ambiguous_topology,
        }


def generation_record(generation: str) -> GenerationRecord:
    """The catalog record of a generation the API accepted."""
    return CATALOG[generation]


def place(generation: str, topology: str, machine_type: str | None = None) -> Placement | None:
    """The placement of a slice, or None when the API does not accept that combination."""
    machines = SLICE_SHAPES.get(generation, {}).get(topology)
    if not machines or (machine_type is not None and machine_type not in machines):
        return None
    machine = machine_type or machines[0]
    record = CATALOG[generation]
    chips = topology_chips(topology)
    per_host = record.machine_types[machine]
    hosts = chips // per_host
    return Placement(
        generation=generation,
        accelerator=record.accelerator,
        topology=topology,
        chips=chips,
        hosts=hosts,
        chips_per_host=per_host,
        machine_type=machine,
        workload="Deployment" if hosts == 1 else "LeaderWorkerSet",
        preview=record.preview,
        devices_per_chip=record.devices_per_chip,
        hbm_bytes_per_device=record.hbm_bytes_per_device,
        ambiguous_topology=len(machines) > 1,
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
