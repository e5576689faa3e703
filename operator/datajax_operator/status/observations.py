"""What the operator saw in the cluster, as plain data: the input of the pure status evaluation.

``observe.py`` fills these from the API server; tests build them by hand. Sidecar metrics (issue 5)
join here as another field, so evaluation stays a pure function of (spec, plan, observations, now).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class WorkloadObservation:
    """The serving workload (Deployment or LeaderWorkerSet) as its controller last reported it.

    ``available`` counts slices that serve: a Deployment's available replicas, a LeaderWorkerSet's
    ready groups (a group is ready only when every host of the slice is).
    """

    kind: str
    name: str
    desired: int
    available: int


@dataclass(frozen=True)
class Observations:
    """Everything gathered for one model in one reconcile."""

    workload: WorkloadObservation | None
    """None when no workload exists (not created yet, or the spec is invalid)."""
    missing_api: str | None = None
    """The API the plan needs but the cluster does not serve, e.g. the LeaderWorkerSet CRD."""
    not_owned: tuple[str, ...] = ()
    """Children (``Kind/name``) whose name is taken by an object this model does not control; the
    operator leaves those objects untouched."""
