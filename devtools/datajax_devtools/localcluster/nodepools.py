"""GKE-shaped node pools as Node objects for kwok to play kubelet for.

The pools, machine types and every figure's source are in ``nodepools.yaml`` (the one place they are
declared); chips per TPU machine type and the accelerator label are the TPU catalog's
(``datajax_operator/api/tpu_catalog.json``). This module only turns them into Node objects: labels,
taints, capacity, and allocatable by GKE's documented reservation formula, so the real kube-scheduler
places our pods as GKE's would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from datajax_operator.api.tpu import CATALOG

DATA: Final = Path(__file__).with_name("nodepools.yaml")
KWOK_ANNOTATION: Final = "kwok.x-k8s.io/node"
"""Nodes carrying ``kwok.x-k8s.io/node: fake`` are the ones kwok manages (its own convention)."""
TPU_RESOURCE: Final = "google.com/tpu"
TPU_TAINT: Final = {"key": TPU_RESOURCE, "value": "present", "effect": "NoSchedule"}
SPOT_LABEL: Final = "cloud.google.com/gke-spot"
SPOT_TAINT: Final = {"key": SPOT_LABEL, "value": "true", "effect": "NoSchedule"}
NODEPOOL_LABEL: Final = "cloud.google.com/gke-nodepool"
ACCELERATOR_LABEL: Final = "cloud.google.com/gke-tpu-accelerator"
TOPOLOGY_LABEL: Final = "cloud.google.com/gke-tpu-topology"
INSTANCE_TYPE_LABEL: Final = "node.kubernetes.io/instance-type"
MAX_PODS: Final = 110
# GKE "Plan GKE Standard node sizes", example node with the default 100 GB boot disk (see nodepools.yaml)
EPHEMERAL_CAPACITY: Final = "98831908Ki"
EPHEMERAL_ALLOCATABLE: Final = "47060071478"
_MIB_PER_GIB: Final = 1024
_EVICTION_MIB: Final = 100


@dataclass(frozen=True)
class MachineType:
    name: str
    vcpus: int
    memory_gb: int
    tpu_chips: int


@dataclass(frozen=True)
class NodePool:
    name: str
    machine: MachineType
    nodes: int
    accelerator: str | None = None
    topology: str | None = None
    spot: bool = False

    def node_names(self) -> list[str]:
        return [f"{self.name}-{index}" for index in range(self.nodes)]


def _tiered(amount: float, tiers: tuple[tuple[int, float], ...], rate_above: float) -> float:
    """``amount`` charged tier by tier: each (size, rate) takes the next ``size`` units, the rest pays
    ``rate_above``."""
    left, total = amount, 0.0
    for size, rate in tiers:
        take = min(left, size)
        total += take * rate
        left -= take
    return total + max(left, 0.0) * rate_above


def reserved_millicores(vcpus: int) -> int:
    """GKE's CPU reservation: 6% of the first core, 1% of the next, 0.5% of the next 2, 0.25% above 4
    (GKE "Plan GKE Standard node sizes", memory and CPU reservations)."""
    return round(_tiered(float(vcpus), ((1, 60.0), (1, 10.0), (2, 5.0)), 2.5))


def reserved_memory_mib(memory_gib: int) -> int:
    """GKE's memory reservation: 25% of the first 4 GiB, 20% of the next 4, 10% of the next 8, 6% of the
    next 112, 2% above 128 GiB, plus 100 MiB for eviction (same page as :func:`reserved_millicores`)."""
    reserved_gib = _tiered(float(memory_gib), ((4, 0.25), (4, 0.20), (8, 0.10), (112, 0.06)), 0.02)
    return round(reserved_gib * _MIB_PER_GIB) + _EVICTION_MIB


def load(path: Path = DATA) -> list[NodePool]:
    """The pools of the data file; a pool naming an unknown machine type or generation is an error.
    Chips per TPU machine type and the accelerator label come from the TPU catalog (``api.tpu``)."""
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    chips = {name: n for record in CATALOG.values() for name, n in record.machine_types.items()}
    machines = {
        name: MachineType(name, int(m["vcpus"]), int(m["memoryGB"]), chips.get(name, 0))
        for name, m in data["machineTypes"].items()
    }
    pools: list[NodePool] = []
    for raw in data["pools"]:
        machine = machines.get(raw["machineType"])
        if machine is None:
            raise ValueError(f"{path}: pool {raw['name']}: unknown machineType {raw['machineType']}")
        record = CATALOG.get(raw.get("generation", ""))
        if machine.tpu_chips and (record is None or machine.name not in record.machine_types):
            raise ValueError(
                f"{path}: pool {raw['name']}: TPU pool needs the generation of {machine.name}"
                f" ({', '.join(CATALOG)})"
            )
        pools.append(
            NodePool(
                name=raw["name"],
                machine=machine,
                nodes=int(raw["nodes"]),
                accelerator=record.accelerator if record is not None and machine.tpu_chips else None,
                topology=raw.get("topology"),
                spot=bool(raw.get("spot", False)),
            )
        )
    return pools


def node_objects(pools: list[NodePool]) -> list[dict[str, Any]]:
    """One Node per pool node, status included (a Node's status may be set on create, as a kubelet
    registering itself does). InternalIPs are 172.30.0.N: never dialled, apart from the pods' range."""
    nodes: list[dict[str, Any]] = []
    for pool in pools:
        machine = pool.machine
        labels = {
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            NODEPOOL_LABEL: pool.name,
            INSTANCE_TYPE_LABEL: machine.name,
        }
        taints: list[dict[str, str]] = []
        if machine.tpu_chips:
            assert pool.accelerator is not None and pool.topology is not None
            labels[ACCELERATOR_LABEL] = pool.accelerator
            labels[TOPOLOGY_LABEL] = pool.topology
            taints.append(dict(TPU_TAINT))
        if pool.spot:
            labels[SPOT_LABEL] = "true"
            taints.append(dict(SPOT_TAINT))
        capacity = {
            "cpu": str(machine.vcpus),
            "memory": f"{machine.memory_gb * _MIB_PER_GIB}Mi",
            "ephemeral-storage": EPHEMERAL_CAPACITY,
            "pods": str(MAX_PODS),
        }
        allocatable = {
            "cpu": f"{machine.vcpus * 1000 - reserved_millicores(machine.vcpus)}m",
            "memory": f"{machine.memory_gb * _MIB_PER_GIB - reserved_memory_mib(machine.memory_gb)}Mi",
            "ephemeral-storage": EPHEMERAL_ALLOCATABLE,
            "pods": str(MAX_PODS),
        }
        if machine.tpu_chips:
            capacity[TPU_RESOURCE] = allocatable[TPU_RESOURCE] = str(machine.tpu_chips)
        for name in pool.node_names():
            address = f"172.30.{len(nodes) // 250}.{len(nodes) % 250 + 1}"
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": {**labels, "kubernetes.io/hostname": name},
                        "annotations": {KWOK_ANNOTATION: "fake"},
                    },
                    "spec": {"taints": taints} if taints else {},
                    "status": {
                        "capacity": capacity,
                        "allocatable": allocatable,
                        "addresses": [
                            {"type": "InternalIP", "address": address},
                            {"type": "Hostname", "address": name},
                        ],
                    },
                }
            )
    return nodes
