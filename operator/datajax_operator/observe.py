"""Gathers what the cluster reports about a model's children into :class:`Observations`.

Today that is the workload's availability, as its controller (the Deployment controller or the
LeaderWorkerSet controller) wrote it in the workload's status. The sidecars' cost and latency figures
(issue 5) are gathered here too, into a further field of ``Observations``.
"""

from typing import Any

from datajax_operator.kube import DEPLOYMENT, LEADER_WORKER_SET, Kube
from datajax_operator.status.observations import Observations, WorkloadObservation


def workload_observation(obj: dict[str, Any]) -> WorkloadObservation:
    """Availability as reported by the workload's controller; a status that describes an older
    generation of the workload counts as nothing available yet."""
    spec = obj.get("spec", {})
    status = obj.get("status", {})
    desired = int(spec.get("replicas", 1))
    current = status.get("observedGeneration", obj["metadata"].get("generation")) == obj["metadata"].get(
        "generation"
    )
    counted = "availableReplicas" if obj["kind"] == DEPLOYMENT.kind else "readyReplicas"
    available = int(status.get(counted, 0)) if current else 0
    return WorkloadObservation(kind=obj["kind"], name=obj["metadata"]["name"], desired=desired, available=available)


def gather(kube: Kube, namespace: str, workload: dict[str, Any] | None, missing_api: str | None) -> Observations:
    """Observations for a model whose rendered workload is ``workload`` (None: no plan, no workload);
    ``missing_api`` names the API the workload needs when the cluster does not serve it.

    The workload is read back rather than taken from the apply response, so the status reflects what
    the controllers wrote since, not what we sent.
    """
    if workload is None or missing_api is not None:
        return Observations(workload=None, missing_api=missing_api)
    kind = LEADER_WORKER_SET if workload["kind"] == LEADER_WORKER_SET.kind else DEPLOYMENT
    found = kube.get(kind, namespace, workload["metadata"]["name"])
    return Observations(workload=workload_observation(found) if found is not None else None)
