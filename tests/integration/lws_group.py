"""The pods of one LeaderWorkerSet group, created as the LWS controller and its pod webhook would.

The LWS controller cannot be built here, so tests of multi-host placement create the group's pods
themselves from the rendered LeaderWorkerSet, with what LWS adds (kubernetes-sigs/lws, read at
pkg/webhooks/pod_webhook.go): the leader is `<lws>-<group>`, workers `<lws>-<group>-<i>`; every pod carries
`leaderworkerset.sigs.k8s.io/name`, `group-index`, and `group-key` (a hash of the leader's
namespace/name); and for the `leaderworkerset.sigs.k8s.io/exclusive-topology` annotation, a required pod
affinity to the group's key and a required anti-affinity to every other group's, both over the
annotation's topology key (SetExclusiveAffinities). Owned by the LeaderWorkerSet, so the garbage
collector removes them with it.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

LWS_LABEL = "leaderworkerset.sigs.k8s.io/"
EXCLUSIVE = LWS_LABEL + "exclusive-topology"


def group_pods(lws: dict[str, Any], group: int = 0) -> list[dict[str, Any]]:
    meta = lws["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    template = lws["spec"]["leaderWorkerTemplate"]
    size = int(template["size"])
    leader = f"{name}-{group}"
    key = hashlib.sha1(f"{namespace}/{leader}".encode()).hexdigest()
    topology_key = (meta.get("annotations") or {}).get(EXCLUSIVE)
    owner = {
        "apiVersion": lws["apiVersion"],
        "kind": lws["kind"],
        "name": name,
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    pods = []
    for index in range(size):
        source = template["leaderTemplate"] if index == 0 else template["workerTemplate"]
        pod = copy.deepcopy(source)
        labels = pod.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                LWS_LABEL + "name": name,
                LWS_LABEL + "group-index": str(group),
                LWS_LABEL + "group-key": key,
                LWS_LABEL + "worker-index": str(index),
            }
        )
        pod["metadata"].setdefault("annotations", {})[LWS_LABEL + "size"] = str(size)
        pod["metadata"]["name"] = leader if index == 0 else f"{leader}-{index}"
        pod["metadata"]["namespace"] = namespace
        pod["metadata"]["ownerReferences"] = [owner]
        if topology_key:
            in_group = {"key": LWS_LABEL + "group-key", "operator": "In", "values": [key]}
            other_groups = [
                {"key": LWS_LABEL + "group-key", "operator": "Exists"},
                {"key": LWS_LABEL + "group-key", "operator": "NotIn", "values": [key]},
            ]
            affinity = pod["spec"].setdefault("affinity", {})
            affinity.setdefault("podAffinity", {}).setdefault(
                "requiredDuringSchedulingIgnoredDuringExecution", []
            ).append({"labelSelector": {"matchExpressions": [in_group]}, "topologyKey": topology_key})
            affinity.setdefault("podAntiAffinity", {}).setdefault(
                "requiredDuringSchedulingIgnoredDuringExecution", []
            ).append({"labelSelector": {"matchExpressions": other_groups}, "topologyKey": topology_key})
        pod["apiVersion"], pod["kind"] = "v1", "Pod"
        pods.append(pod)
    return pods
