"""Turns what the cluster reports about a model's children into :class:`Observations`.

Today that is the workload's availability, as its controller (the Deployment controller or the
LeaderWorkerSet controller) wrote it in the workload's status; ``reconcile`` reads the objects through
``kube`` and hands them over. The sidecars' cost and latency figures (issue 5) are gathered here
too, into a further field of ``Observations``.
"""

from typing import Any

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
    counted = "availableReplicas" if obj["kind"] == "Deployment" else "readyReplicas"
    available = int(status.get(counted, 0)) if current else 0
    return WorkloadObservation(
        kind=obj["kind"], name=obj["metadata"]["name"], desired=desired, available=available
    )


def gather(
    workload: dict[str, Any] | None, missing_api: str | None, not_owned: tuple[str, ...] = ()
) -> Observations:
    """Observations from the workload as read back from the server after apply (None: it does not
    exist), the API the plan needs when the cluster does not serve it, and the children whose names
    are taken by objects the model does not control."""
    if missing_api is not None:
        return Observations(workload=None, missing_api=missing_api, not_owned=not_owned)
    return Observations(
        workload=workload_observation(workload) if workload is not None else None, not_owned=not_owned
    )
