"""One idempotent reconcile() for create, update, resume, child events and periodic re-observation.

Level-triggered: every call reads the model afresh and drives the cluster to what the spec asks for,
whatever happened before (an operator restart, a missed event, a person deleting a child). The steps:

1. plan the spec (pure); a spec the planner rejects wants no children at all;
2. render and server-side apply every wanted child (a no-op apply changes nothing on the server);
3. delete the children the plan no longer wants (a Deployment after a switch to a multi-host
   LeaderWorkerSet, and back), only those this model controls (owner reference uid);
4. gather what the controllers report, evaluate the status (pure), and write it once, only when it
   differs from the stored one; post an Event for each condition that changed.

A spec that cannot be planned removes the workload rather than leaving an older spec serving under a
generation, price and ceiling the user has since replaced; the status says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from datajax_operator.api.errors import validation_problems
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.api.status import DataJaxModelStatus
from datajax_operator.kube import (
    CHILD_KINDS,
    DATAJAX_MODEL,
    DEPLOYMENT,
    LEADER_WORKER_SET,
    Kube,
    KubeError,
    kind_of,
)
from datajax_operator.observe import gather
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan
from datajax_operator.plan.problems import PlanError
from datajax_operator.render.names import base_name
from datajax_operator.render.objects import render_objects
from datajax_operator.status.conditions import transitions
from datajax_operator.status.evaluate import Evaluation, evaluate

log = logging.getLogger(__name__)

WORKLOAD_KINDS = (DEPLOYMENT.kind, LEADER_WORKER_SET.kind)


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did, for the handlers (retry?) and the operator's metrics."""

    status: DataJaxModelStatus
    status_written: bool
    applied: tuple[str, ...]
    deleted: tuple[str, ...]
    waiting_for: str | None
    """An API the plan needs that the cluster does not serve yet: retry later."""
    workload_version: str | None = None
    """resourceVersion of the workload as this pass read it back: a watch event carrying it is the echo
    of what was already observed (the handlers skip it)."""


def _ref(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _plan(raw: dict[str, Any], config: OperatorConfig) -> tuple[Evaluation, list[dict[str, Any]]]:
    """The plan and the rendered children, or the problems that prevent them."""
    try:
        model = DataJaxModel.model_validate(raw)
        plan = make_plan(model, config)
    except ValidationError as err:
        return Evaluation(plan=None, problems=validation_problems(err)), []
    except PlanError as err:
        return Evaluation(plan=None, problems=err.problems), []
    objects = render_objects(model, plan, config)
    return Evaluation(plan=plan, problems=[], endpoint=_endpoint(objects)), objects


def _endpoint(objects: list[dict[str, Any]]) -> str | None:
    for obj in objects:
        if obj["kind"] == "Service":
            meta = obj["metadata"]
            port = next(p["port"] for p in obj["spec"]["ports"] if p["name"] == "http")
            return f"http://{meta['name']}.{meta['namespace']}.svc:{port}/v1"
    return None


def _controlled_by(obj: dict[str, Any], uid: str) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences", [])
    )


def _delete_unwanted(
    kube: Kube, model: dict[str, Any], wanted: list[dict[str, Any]], lws_served: bool
) -> list[str]:
    """Delete the children of kinds the plan no longer wants (only those this model controls).

    Every child is named ``base_name(model)`` whatever its kind, so a kind the plan wants cannot have
    another child of ours, and a kind it does not want has at most that one: a GET by name per such
    kind, instead of a label-selected LIST per kind, which the API server answers by scanning every
    object of the kind in the namespace (make bench: 3 LISTs per pass were a quarter of a burst's
    requests, and cost O(models) each)."""
    meta = model["metadata"]
    wanted_kinds = {o["kind"] for o in wanted}
    name = base_name(meta["name"])
    deleted = []
    for kind in CHILD_KINDS:
        if kind.kind in wanted_kinds or (kind is LEADER_WORKER_SET and not lws_served):
            continue
        child = kube.get(kind, meta["namespace"], name)
        if child is None or not _controlled_by(child, meta["uid"]):
            continue
        if kube.delete(kind, meta["namespace"], name, child["metadata"]["uid"]):
            deleted.append(f"{kind.kind}/{name}")
    return deleted


def _previous_status(raw: dict[str, Any]) -> DataJaxModelStatus | None:
    try:
        return DataJaxModelStatus.model_validate(raw["status"]) if raw.get("status") else None
    except ValidationError:
        return None  # unreadable (hand-edited?): recomputed from scratch and overwritten


def _status_document(status: DataJaxModelStatus | None) -> dict[str, Any] | None:
    return None if status is None else status.model_dump(mode="json", by_alias=True, exclude_none=True)


def reconcile(kube: Kube, namespace: str, name: str, config: OperatorConfig, now: datetime) -> Outcome | None:
    """Drive one model's children and status to its spec. None when the model is gone or going.

    ``now`` is the clock of this pass (UTC, whole seconds), the time of any condition transition.
    """
    raw = kube.get(DATAJAX_MODEL, namespace, name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return None
    evaluation, desired = _plan(raw, config)
    lws_served = kube.serves(LEADER_WORKER_SET)
    waiting_for = None
    if not lws_served and any(o["kind"] == LEADER_WORKER_SET.kind for o in desired):
        waiting_for = f"{LEADER_WORKER_SET.api_version} {LEADER_WORKER_SET.kind}"
        desired = [o for o in desired if o["kind"] != LEADER_WORKER_SET.kind]
    applied = [_ref(kube.apply(obj)) for obj in desired]
    deleted = _delete_unwanted(kube, raw, desired, lws_served)

    # Read back rather than taken from the apply response: what the controllers wrote since counts.
    workload = next((o for o in desired if o["kind"] in WORKLOAD_KINDS), None)
    found = kube.get(kind_of(workload), namespace, workload["metadata"]["name"]) if workload else None
    observations = gather(found, waiting_for)
    previous = _previous_status(raw)
    status = evaluate(evaluation, observations, raw["metadata"].get("generation"), previous, now)

    document = _status_document(status)
    written = document != _status_document(previous)
    if written and document is not None:
        kube.apply_status(DATAJAX_MODEL, namespace, name, document)
        for change in transitions(previous.conditions if previous else [], status.conditions):
            condition = change.condition
            try:
                kube.event(
                    raw,
                    event_type=change.event_type,
                    reason=condition.reason,
                    message=f"{condition.type} is {condition.status}: {condition.message}",
                    now=now,
                )
            except KubeError as err:  # an Event is a courtesy; never fail a reconcile over one
                log.warning("event for %s/%s not posted: %s", namespace, name, err)
    return Outcome(
        status=status,
        status_written=written,
        applied=tuple(applied),
        deleted=tuple(deleted),
        waiting_for=waiting_for,
        workload_version=found["metadata"].get("resourceVersion") if found else None,
    )
