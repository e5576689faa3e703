"""One idempotent reconcile() for create, update, resume, child events and periodic re-observation.

Level-triggered: every call reads the model afresh and drives the cluster to what the spec asks for,
whatever happened before (an operator restart, a missed event, a person deleting a child). The steps:

1. read the wave spec the model names (``spec.plan.waveSpecRef``, a ConfigMap key) and plan the spec
   (pure); a spec the planner rejects changes no child: what already serves keeps serving, untouched,
   and ``SpecValid=False`` says what to fix (a new model simply gets no workload);
2. render and server-side apply every wanted child (a no-op apply changes nothing on the server),
   except one whose name is taken by an object this model does not control: that object is left
   exactly as it is (never adopted, never deleted) and the status says so; a child the API server
   refuses as invalid (a 400/422 for content the CRD cannot check, e.g. an env ``fieldRef`` path the
   Pod does not support) makes the spec invalid, like a planner rejection, instead of failing every
   reconcile, and deletes nothing;
3. delete the children the plan no longer wants (a Deployment after a switch to a multi-host
   LeaderWorkerSet, and back), only those this model controls (owner reference uid);
4. gather what the controllers report and what the sidecars exported (scraped by the caller, see
   ``observe``), evaluate the status (pure), and write it once, only when it differs from the stored
   one; post an Event for each condition change a person acts on (not a condition's birth in a
   state nobody acts on) and for each cost action taken.

The cost judgement (``status.judge``) runs before rendering, because the replica count it allows
(fewer under ScaleDown, none under Suspend) is rendered into the workload: the spec stays the
user's, and the count is derived from it and ``status.costEvaluation`` alone. With ``spec.scaling``
the autoscaler (``status.autoscale``) decides the count instead, from the sidecars' figures and
``status.scaling`` (the previous pass's decision, fit and availability); its Events follow the
cost action's.

An edit that cannot be planned must not take a serving model down: nothing is lost, and the status
(``SpecValid=False``, ``Ready=False``) says that the running workload is the last valid spec's.
The wave-spec ConfigMap is not watched: an edit to it reaches the plan at the next resync.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from datajax_operator.api.errors import validation_problems
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.api.status import DataJaxModelStatus
from datajax_operator.kube import (
    CHILD_KINDS,
    CONFIG_MAP,
    DATAJAX_MODEL,
    DEPLOYMENT,
    LEADER_WORKER_SET,
    POD,
    Kube,
    KubeError,
    kind_of,
)
from datajax_operator.observe import gather, unscheduled, workload_observation
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan
from datajax_operator.plan.problems import PlanError, Problem
from datajax_operator.render.names import child_names, selector_labels
from datajax_operator.render.objects import render_objects
from datajax_operator.status.autoscale import decide_scale
from datajax_operator.status.conditions import actionable_transitions
from datajax_operator.status.evaluate import Evaluation, evaluate
from datajax_operator.status.judge import Judgement, judge
from datajax_operator.status.observations import SidecarScrape

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


WAVE_SPEC_FIELD = "spec.plan.waveSpecRef"


def _wave_spec(kube: Kube, raw: dict[str, Any]) -> dict[str, Any] | Problem | None:
    """The decoded wave spec the model names, a Problem saying why it cannot be used, or None when the
    model names none. Read from the raw object: the spec itself is validated by the planner step."""
    ref = ((raw.get("spec") or {}).get("plan") or {}).get("waveSpecRef")
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        return None
    name, key = ref["name"], ref.get("key", "bundle.json")
    found = kube.get(CONFIG_MAP, raw["metadata"]["namespace"], name)
    if found is None:
        return Problem(
            WAVE_SPEC_FIELD,
            f"ConfigMap {name} does not exist in this namespace: create it with the JSON that "
            f"datajax-export-wavespec writes under key {key}, or remove the reference",
        )
    text = (found.get("data") or {}).get(key)
    if text is None:
        return Problem(WAVE_SPEC_FIELD, f"ConfigMap {name} has no key {key}: set waveSpecRef.key")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        return Problem(WAVE_SPEC_FIELD, f"ConfigMap {name} key {key} is not JSON ({err})")
    if not isinstance(document, dict):
        return Problem(WAVE_SPEC_FIELD, f"ConfigMap {name} key {key} is not a JSON object")
    return document


def _plan(
    raw: dict[str, Any],
    config: OperatorConfig,
    previous: DataJaxModelStatus | None,
    sidecars: Sequence[SidecarScrape],
    now: datetime,
    *,
    wave_spec: dict[str, Any] | Problem | None,
    sidecars_unlisted: str | None = None,
) -> tuple[Evaluation, Judgement | None, list[dict[str, Any]]]:
    """The plan, the cost judgement and the rendered children, or the problems that prevent them."""
    if isinstance(wave_spec, Problem):
        return Evaluation(plan=None, problems=[wave_spec]), None, []
    try:
        model = DataJaxModel.model_validate(raw)
        plan = make_plan(model, config, wave_spec)
    except ValidationError as err:
        return Evaluation(plan=None, problems=validation_problems(err)), None, []
    except PlanError as err:
        return Evaluation(plan=None, problems=err.problems), None, []
    judgement = judge(
        model.spec,
        raw["metadata"].get("generation") or 0,
        previous,
        sidecars,
        now,
        slice_usd_per_hour=plan.placement.chips * plan.cost.usd_per_chip_hour,
        sidecars_unlisted=sidecars_unlisted,
    )
    replicas = judgement.replicas
    scale = None
    roof = plan.capacity.roofline if plan.capacity is not None else None
    if model.spec.scaling is not None and roof is not None:
        scale = decide_scale(
            model.spec,
            raw["metadata"].get("generation") or 0,
            previous,
            sidecars,
            now,
            roof=roof,
            slice_usd_per_hour=plan.placement.chips * plan.cost.usd_per_chip_hour,
        )
        replicas = scale.replicas
    objects = render_objects(model, plan, config, replicas=replicas)
    evaluation = Evaluation(
        plan=plan, problems=[], endpoint=_endpoint(objects), selector=_selector(objects), scale=scale
    )
    return evaluation, judgement, objects


def _endpoint(objects: list[dict[str, Any]]) -> str | None:
    for obj in objects:
        if obj["kind"] == "Service":
            meta = obj["metadata"]
            port = next(p["port"] for p in obj["spec"]["ports"] if p["name"] == "http")
            return f"http://{meta['name']}.{meta['namespace']}.svc:{port}/v1"
    return None


def _selector(objects: list[dict[str, Any]]) -> str | None:
    """The Service's selector as a label-selector string: one pod per slice (the leader of a multi-host
    slice), what the scale subresource gives an HPA to average pod metrics over."""
    for obj in objects:
        if obj["kind"] == "Service":
            return ",".join(f"{k}={v}" for k, v in sorted(obj["spec"]["selector"].items()))
    return None


def _controlled_by(obj: dict[str, Any], uid: str) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences", [])
    )


def _not_controlled(kube: Kube, obj: dict[str, Any], uid: str) -> bool:
    """Whether the name of this child is taken by an object the model does not control."""
    meta = obj["metadata"]
    found = kube.get(kind_of(obj), meta["namespace"], meta["name"])
    return found is not None and not _controlled_by(found, uid)


REJECTED_STATUSES = (400, 422)
"""The API server refuses the content itself: retrying the same object can never succeed."""


def _apply_children(
    kube: Kube, desired: list[dict[str, Any]], uid: str
) -> tuple[list[str], list[str], str | None]:
    """Apply every child whose name is free or already ours. Returns what was applied, what was left
    alone because another owner holds the name, and the refusal that stopped the applies, if any."""
    applied: list[str] = []
    foreign: list[str] = []
    for obj in desired:
        if _not_controlled(kube, obj, uid):
            foreign.append(_ref(obj))
            continue
        try:
            applied.append(_ref(kube.apply(obj)))
        except KubeError as err:
            if err.status not in REJECTED_STATUSES:
                raise
            return applied, foreign, f"the API server refused {_ref(obj)}: {err}"
    return applied, foreign, None


def _delete_unwanted(
    kube: Kube, model: dict[str, Any], wanted: list[dict[str, Any]], lws_served: bool
) -> list[str]:
    """Delete the children of kinds the plan no longer wants (only those this model controls).

    Each kind of child has one deterministic name per model (``child_names``), so a kind the plan
    does not want has at most that one child of ours: a GET by name per such kind, instead of a
    label-selected LIST per kind, which the API server answers by scanning every object of the kind
    in the namespace (make bench: 3 LISTs per pass were a quarter of a burst's requests)."""
    meta = model["metadata"]
    wanted_kinds = {o["kind"] for o in wanted}
    names = child_names(meta["name"])
    deleted = []
    for kind in CHILD_KINDS:
        if kind.kind in wanted_kinds or (kind is LEADER_WORKER_SET and not lws_served):
            continue
        name = names[kind.kind]
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


def _unscheduled(kube: Kube, namespace: str, name: str, workload: dict[str, Any] | None) -> str | None:
    """Why the model's pods wait for a node, read only while its workload has fewer available slices
    than desired (one list of the model's pods). A role without pod reads costs the detail, not the
    pass."""
    if workload is None:
        return None
    observed = workload_observation(workload)
    if observed.available >= observed.desired:
        return None
    selector = ",".join(f"{k}={v}" for k, v in sorted(selector_labels(name).items()))
    try:
        return unscheduled(kube.list(POD, namespace, selector))
    except KubeError as err:
        log.warning("%s/%s: pods not read: %s", namespace, name, err)
        return None


def _status_document(status: DataJaxModelStatus | None) -> dict[str, Any] | None:
    return None if status is None else status.model_dump(mode="json", by_alias=True, exclude_none=True)


def reconcile(
    kube: Kube,
    namespace: str,
    name: str,
    config: OperatorConfig,
    now: datetime,
    *,
    sidecars: Sequence[SidecarScrape] = (),
    sidecars_unlisted: str | None = None,
) -> Outcome | None:
    """Drive one model's children and status to its spec. None when the model is gone or going.

    ``now`` is the clock of this pass (UTC, whole seconds), the time of any condition transition;
    ``sidecars`` are this pass's scrapes of the model's sidecar endpoints (none found: empty);
    ``sidecars_unlisted`` is why the endpoints could not be listed at all (the API server refused the
    EndpointSlices): the pass goes on without metrics and says so in MetricsAvailable.
    """
    raw = kube.get(DATAJAX_MODEL, namespace, name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return None
    previous = _previous_status(raw)
    evaluation, judgement, desired = _plan(
        raw,
        config,
        previous,
        sidecars,
        now,
        wave_spec=_wave_spec(kube, raw),
        sidecars_unlisted=sidecars_unlisted,
    )
    lws_served = kube.serves(LEADER_WORKER_SET)
    waiting_for = None
    if not lws_served and any(o["kind"] == LEADER_WORKER_SET.kind for o in desired):
        waiting_for = f"{LEADER_WORKER_SET.api_version} {LEADER_WORKER_SET.kind}"
        desired = [o for o in desired if o["kind"] != LEADER_WORKER_SET.kind]
    applied: list[str] = []
    deleted: list[str] = []
    foreign: list[str] = []
    # An edit the planner rejects must not take a serving model down: what runs keeps running,
    # untouched, and SpecValid=False says what to fix. A new model simply gets no workload.
    if evaluation.plan is not None:
        applied, foreign, refused = _apply_children(kube, desired, raw["metadata"]["uid"])
        if refused is not None:
            # Flagged like a spec the planner rejects, and likewise nothing is deleted: the refusal
            # may come from a later child than the workload.
            log.warning("%s/%s: %s", namespace, name, refused)
            evaluation = Evaluation(plan=None, problems=[Problem("spec", refused)])
            desired = []
        else:
            deleted = _delete_unwanted(kube, raw, desired, lws_served)

    # Read back rather than taken from the apply response: what the controllers wrote since counts.
    workload = next((o for o in desired if o["kind"] in WORKLOAD_KINDS), None)
    found = (
        kube.get(kind_of(workload), namespace, workload["metadata"]["name"])
        if workload is not None and _ref(workload) not in foreign
        else None
    )
    observations = gather(
        found, waiting_for, sidecars, tuple(foreign), _unscheduled(kube, namespace, name, found)
    )
    generation = raw["metadata"].get("generation")
    status = evaluate(evaluation, observations, generation, previous, now, judgement=judgement)

    document = _status_document(status)
    written = document != _status_document(previous)
    if written and document is not None:
        kube.apply_status(DATAJAX_MODEL, namespace, name, document)
        for change in actionable_transitions(previous.conditions if previous else [], status.conditions):
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
    scale_actions = evaluation.scale.actions if evaluation.scale is not None else ()
    for action in (*(judgement.actions if judgement is not None else ()), *scale_actions):
        log.info("%s/%s: %s: %s", namespace, name, action.reason, action.message)
        try:
            kube.event(
                raw,
                event_type="Warning" if action.warning else "Normal",
                reason=action.reason,
                message=action.message,
                now=now,
            )
        except KubeError as err:
            log.warning("event for %s/%s not posted: %s", namespace, name, err)
    return Outcome(
        status=status,
        status_written=written,
        applied=tuple(applied),
        deleted=tuple(deleted),
        waiting_for=waiting_for,
        workload_version=found["metadata"].get("resourceVersion") if found else None,
    )
