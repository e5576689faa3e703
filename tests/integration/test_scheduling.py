"""Our pods on the real kube-scheduler, kube-controller-manager and kwok's GKE-shaped TPU node pools.

The node pools are declared in datajax_devtools/localcluster/nodepools.yaml. Deployments get their
ReplicaSets and pods from the real controllers; multi-host slices (LeaderWorkerSets) get their group's
pods from ``lws_group`` as the LWS controller would create them (it cannot be built here).
"""

from __future__ import annotations

from typing import Any

import pytest
from cluster_state import ClusterState, model_doc
from kubehelpers import EXAMPLES, RunningOperator, cordoned, load_example, wait_for
from lws_group import group_pods

pytestmark = pytest.mark.integration

POOL = "cloud.google.com/gke-nodepool"
ACCELERATOR = "cloud.google.com/gke-tpu-accelerator"
TOPOLOGY = "cloud.google.com/gke-tpu-topology"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
SPOT = "cloud.google.com/gke-spot"
LWS_PATH = "/apis/leaderworkerset.x-k8s.io/v1/namespaces/{ns}/leaderworkersets"


def pods(state: ClusterState, ns: str, selector: str = "") -> list[dict[str, Any]]:
    query = [("labelSelector", selector)] if selector else None
    status, data = state.call("GET", f"/api/v1/namespaces/{ns}/pods", query=query)
    assert status == 200, data
    items: list[dict[str, Any]] = data["items"]
    return items


def node(state: ClusterState, name: str) -> dict[str, Any]:
    found: dict[str, Any] = state.get(f"/api/v1/nodes/{name}")
    return found


def running(state: ClusterState, ns: str, count: int, selector: str = "") -> list[dict[str, Any]]:
    """Wait for ``count`` pods Running with an IP (kwok's doing) on a node (the scheduler's)."""

    def check() -> list[dict[str, Any]] | None:
        found = [
            p
            for p in pods(state, ns, selector)
            if p["status"].get("phase") == "Running"
            and p["status"].get("podIP")
            and p["spec"].get("nodeName")
        ]
        return found if len(found) == count else None

    result: list[dict[str, Any]] = wait_for(check, 60, f"{count} running pods in {ns}")
    return result


def placement(state: ClusterState, ns: str, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        return ((state.model(ns, name) or {}).get("status") or {}).get("placement")

    result: dict[str, Any] = wait_for(check, 30, f"{name}'s placement")
    return result


def assert_on_pool(state: ClusterState, pod: dict[str, Any], where: dict[str, Any]) -> dict[str, Any]:
    """The pod's node is a node of the pool the model's placement names, nothing else."""
    labels = node(state, pod["spec"]["nodeName"])["metadata"]["labels"]
    assert labels.get(ACCELERATOR) == where["accelerator"], (pod["metadata"]["name"], labels)
    assert labels.get(TOPOLOGY) == where["topology"], (pod["metadata"]["name"], labels)
    assert labels.get(INSTANCE_TYPE) == where["machineType"], (pod["metadata"]["name"], labels)
    return labels


def create_group(state: ClusterState, ns: str, name: str) -> list[dict[str, Any]]:
    """The rendered LeaderWorkerSet's first group of pods, created as LWS would."""
    lws = wait_for(lambda: state.get(f"{LWS_PATH.format(ns=ns)}/{name}"), 30, f"LeaderWorkerSet {name}")
    created = []
    for pod in group_pods(lws):
        status, data = state.call("POST", f"/api/v1/namespaces/{ns}/pods", pod)
        assert status == 201, data
        created.append(data)
    return created


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_lands_only_on_its_pool(
    operator: RunningOperator, state: ClusterState, namespace: str, example: Any
) -> None:
    doc = load_example(example, namespace)
    name = doc["metadata"]["name"]
    state.create_model(namespace, doc)
    where = placement(state, namespace, name)
    hosts = int(where["hosts"])
    if where["workload"] == "LeaderWorkerSet":
        create_group(state, namespace, name)
        placed = running(state, namespace, hosts, "leaderworkerset.sigs.k8s.io/group-index=0")
    else:
        placed = running(state, namespace, 1)
    pools = {assert_on_pool(state, pod, where)[POOL] for pod in placed}
    # a slice is one node pool; a multi-host slice's pods each on their own host of it
    assert len(pools) == 1
    assert len({pod["spec"]["nodeName"] for pod in placed}) == hosts
    if where["workload"] == "Deployment":
        # and the model reports it available: the Deployment controller counted kwok's Ready pod
        wait_for(
            lambda: (state.condition(namespace, name, "WorkloadAvailable") or {}).get("status") == "True",
            60,
            "WorkloadAvailable=True",
        )


def test_a_pod_that_fits_nowhere_stays_pending_and_the_status_says_why(
    operator: RunningOperator, state: ClusterState, namespace: str
) -> None:
    """v5e 2x2: two single-host ct5lp-hightpu-4t nodes; a third replica has nowhere to go."""
    doc = model_doc("crowded", namespace, replicas=3)
    doc["spec"]["tpu"] = {"generation": "v5e", "topology": "2x2"}
    state.create_model(namespace, doc)
    placed = running(state, namespace, 2)
    assert {node(state, p["spec"]["nodeName"])["metadata"]["labels"][POOL] for p in placed} == {"tpu-v5e-2x2"}

    def says_why() -> dict[str, Any] | None:
        condition = state.condition(namespace, "crowded", "WorkloadAvailable") or {}
        message = condition.get("message", "")
        return condition if "2/3 slices available" in message and "1 pod(s) cannot" in message else None

    # two of three slices serve (once both are Ready), the third waits for a node
    condition = wait_for(says_why, 90, "WorkloadAvailable to carry the scheduler's reason")
    assert condition["status"] == "True"
    [pending] = [p for p in pods(state, namespace) if not p["spec"].get("nodeName")]
    scheduled = next(c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["status"] == "False" and scheduled["reason"] == "Unschedulable"
    assert "Insufficient google.com/tpu" in scheduled["message"]
    # the scheduler's own words, from the pod's PodScheduled condition
    assert f"pod {pending['metadata']['name']}: Unschedulable: " in condition["message"]
    assert scheduled["message"].strip().rstrip(".") in condition["message"]


def test_spot_models_land_only_on_spot_pools(
    operator: RunningOperator, state: ClusterState, namespace: str
) -> None:
    doc = model_doc("thrifty", namespace)
    doc["spec"]["tpu"]["spot"] = True
    state.create_model(namespace, doc)
    [pod] = running(state, namespace, 1)
    labels = node(state, pod["spec"]["nodeName"])["metadata"]["labels"]
    assert labels[SPOT] == "true"
    assert labels[POOL] == "tpu-v6e-2x4-spot"


def test_a_2x4_on_4_chip_machines_is_two_hosts_of_one_4t_pool_never_an_8t_node(
    operator: RunningOperator, state: ClusterState, namespace: str, admin_client: Any
) -> None:
    """Both kinds of node pool carry topology 2x4; only the machine type tells them apart. With the
    4-chip pool cordoned, the group's 4-chip pods would fit on the 8-chip nodes if the node selector let
    them: they must wait instead (the scheduler says so), and land on the 4-chip pool once it is back."""
    doc = model_doc("split", namespace)
    doc["spec"]["tpu"]["machineType"] = "ct6e-standard-4t"
    state.create_model(namespace, doc)
    where = placement(state, namespace, "split")
    assert (where["hosts"], where["workload"]) == (2, "LeaderWorkerSet")
    with cordoned(admin_client, "tpu-v6e-2x4-4t") as uncordon:
        created = create_group(state, namespace, "split")

        def verdicts() -> list[dict[str, Any]] | None:
            found = pods(state, namespace)
            bound = [p for p in found if p["spec"].get("nodeName")]
            assert not bound, [(p["metadata"]["name"], p["spec"]["nodeName"]) for p in bound]
            said = [
                c
                for p in found
                for c in p["status"].get("conditions") or []
                if c["type"] == "PodScheduled" and c["status"] == "False"
            ]
            return said if len(said) == len(created) else None

        for verdict in wait_for(verdicts, 30, "the scheduler's verdict on both pods"):
            assert verdict["reason"] == "Unschedulable", verdict
        uncordon()
        placed = running(state, namespace, 2)
    for pod in placed:
        labels = assert_on_pool(state, pod, where)
        assert labels[INSTANCE_TYPE] == "ct6e-standard-4t"
        assert labels[POOL] == "tpu-v6e-2x4-4t"
    assert len({p["spec"]["nodeName"] for p in placed}) == 2


def test_deleting_a_model_removes_every_child_through_owner_references(
    operator: RunningOperator, state: ClusterState, namespace: str
) -> None:
    """The garbage collector, not the operator, removes the Deployment's ReplicaSet and pods and the
    Service's EndpointSlices: what the model owns goes, transitively."""
    state.create_model(namespace, model_doc("brief", namespace))
    [pod] = running(state, namespace, 1)
    slices = f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
    # the EndpointSlice controller's own slice, listing the pod's IP once kwok made it Ready
    wait_for(
        lambda: any(
            item["metadata"]["labels"].get("endpointslice.kubernetes.io/managed-by")
            == "endpointslice-controller.k8s.io"
            and any(
                pod["status"]["podIP"] in e["addresses"] and e["conditions"].get("ready")
                for e in item.get("endpoints") or []
            )
            for item in state.get(slices)["items"]
        ),
        30,
        "the EndpointSlice controller to list the ready pod",
    )
    status, data = state.call(
        "DELETE", f"/apis/datajax.dev/v1alpha1/namespaces/{namespace}/datajaxmodels/brief"
    )
    assert status == 200, data
    paths = [
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        f"/apis/apps/v1/namespaces/{namespace}/replicasets",
        f"/api/v1/namespaces/{namespace}/pods",
        f"/api/v1/namespaces/{namespace}/services",
        slices,
    ]

    def left() -> list[str]:
        return [
            f"{p.rsplit('/', 1)[1]}/{i['metadata']['name']}" for p in paths for i in state.get(p)["items"]
        ]

    wait_for(lambda: not left(), 60, "every child of the model to be garbage-collected")
    config_maps = state.get(f"/api/v1/namespaces/{namespace}/configmaps")["items"]
    assert not [c["metadata"]["name"] for c in config_maps if c["metadata"]["name"].startswith("brief")]
