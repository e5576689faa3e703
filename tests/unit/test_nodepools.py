"""The local control plane's node pools (nodepools.yaml) agree with GKE's formulas and our catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from datajax_devtools.localcluster import kwok, nodepools
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.api.tpu import CATALOG, SLICE_SHAPES
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan

REPO = Path(__file__).resolve().parents[2]
POOLS = nodepools.load()


def test_cpu_reservation_matches_gkes_example_node() -> None:
    # GKE "Plan GKE Standard node sizes": a 4-vCPU node shows allocatable cpu 3920m
    assert 4000 - nodepools.reserved_millicores(4) == 3920


def test_memory_reservation_matches_the_documented_tiers() -> None:
    # 150 GiB: 1 + 0.8 + 0.8 + 6.72 + 0.44 GiB by the tiers, plus 100 MiB for eviction = 9.8577 GiB
    assert nodepools.reserved_memory_mib(150) / 1024 == pytest.approx(9.8577, abs=1e-3)
    assert nodepools.reserved_memory_mib(16) == round((1 + 0.8 + 0.8) * 1024) + 100


def test_tpu_pools_are_shapes_our_api_accepts_with_the_catalogs_chips_and_labels() -> None:
    for pool in POOLS:
        if not pool.machine.tpu_chips:
            continue
        generation = next(g for g, record in CATALOG.items() if record.accelerator == pool.accelerator)
        assert pool.topology in SLICE_SHAPES[generation], pool
        assert pool.machine.name in SLICE_SHAPES[generation][pool.topology], pool
        assert CATALOG[generation].machine_types[pool.machine.name] == pool.machine.tpu_chips, pool


def test_every_example_has_a_pool_with_room_for_one_slice() -> None:
    for path in sorted((REPO / "examples").glob("*.yaml")):
        model = DataJaxModel.model_validate(yaml.safe_load(path.read_text()))
        placement = make_plan(model, OperatorConfig()).placement
        fitting = [
            p
            for p in POOLS
            if (p.accelerator, p.topology, p.machine.name, p.spot)
            == (placement.accelerator, placement.topology, placement.machine_type, False)
        ]
        assert fitting and fitting[0].nodes >= placement.hosts, (path.name, placement)


def test_nodes_carry_gke_labels_taints_and_allocatable_below_capacity() -> None:
    nodes = nodepools.node_objects(POOLS)
    assert len(nodes) == sum(p.nodes for p in POOLS)
    assert len({n["metadata"]["name"] for n in nodes}) == len(nodes)
    for node in nodes:
        labels = node["metadata"]["labels"]
        status = node["status"]
        assert labels[nodepools.NODEPOOL_LABEL] and labels[nodepools.INSTANCE_TYPE_LABEL]
        assert node["metadata"]["annotations"] == {nodepools.KWOK_ANNOTATION: "fake"}
        taints = node["spec"].get("taints", [])
        if nodepools.TPU_RESOURCE in status["capacity"]:
            assert nodepools.TPU_TAINT in taints
            assert labels[nodepools.ACCELERATOR_LABEL] and labels[nodepools.TOPOLOGY_LABEL]
            assert status["allocatable"][nodepools.TPU_RESOURCE] == status["capacity"][nodepools.TPU_RESOURCE]
        else:
            assert taints == [] and nodepools.ACCELERATOR_LABEL not in labels
        assert (nodepools.SPOT_TAINT in taints) == (labels.get(nodepools.SPOT_LABEL) == "true")
        assert int(status["allocatable"]["cpu"].rstrip("m")) < int(status["capacity"]["cpu"]) * 1000


def test_kwok_config_runs_pods_not_ready_then_ready_after_the_delay() -> None:
    docs = kwok.config_documents("10.77.3.0/24", 2.5)
    options = docs[0]["options"]
    assert options["cidr"] == "10.77.3.0/24"
    assert options["manageNodesWithAnnotationSelector"] == f"{nodepools.KWOK_ANNOTATION}=fake"
    stages = {d["metadata"]["name"]: d["spec"] for d in docs[1:]}
    assert set(stages) == {"node-ready", "pod-running", "pod-ready", "pod-delete"}
    assert 'status: "False"' in stages["pod-running"]["next"]["statusTemplate"]
    assert stages["pod-ready"]["delay"] == {"durationMilliseconds": 2500}
    assert stages["pod-delete"]["next"] == {"delete": True}
