"""One idempotent pass per model, for create, update, resume, child events and periodic observation.

Level-triggered: every pass drives the cluster to what the spec asks for, whatever happened before
(an operator restart, a missed event, a person deleting a child). Shaped as DESIGN §2 asks:

1. gather: the model and its children from the watch cache (``cache``; a GET only for what no watch
   event has reported yet), the wave spec the model names, the sidecars' scrapes (done by the caller,
   see ``observe``) and the judgement's memory of recent passes;
2. decide (pure, ``decide``): plan the spec, judge the figures (the replica count the cost action
   allows is data in the decision, rendered into the workload), render the children;
3. apply what changed: a child is applied only when it is missing, when its rendered form differs from
   the one it carries (the hash of the rendered object, in the ``datajax.dev/rendered-hash``
   annotation), or when a field the operator renders was changed on the server (``drifted``: a
   person's ``kubectl edit`` of a field we own is reverted at the next pass, as before); a child
   whose name is taken by an object this model does not control is left exactly as it is (never
   adopted, never deleted) and the status says so; a child the API server refuses as invalid (a
   400/422 for content the CRD could not check) makes the spec invalid, like a planner rejection,
   and deletes nothing; children of kinds the plan no longer wants are deleted (only those this
   model controls);
4. write once: the status only when something a person or a controller acts on changed
   (``status.writes``); the Events of the cost actions (and of the autoscaler's, with
   ``spec.scaling``: ``status.autoscale`` decides the count then) first (named after the decision, so a
   decision taken again after a crash is posted once), those of condition changes after the write.

With ``spec.plan.compileGate`` the gate's Job is applied first and its verdict read (from the pod's
termination message, once the Job controller counts the pod as ended); the workload is applied only
when the program fits (``status.gate``). Until then, as for an invalid edit, nothing of the workload is
applied or deleted: a workload already serving keeps serving. A changed request gets a new Job and the
older ones are deleted, as all of them are when the gate is turned off.

A spec that cannot be planned must not take a serving model down: what already serves keeps serving,
untouched, and ``SpecValid=False`` says what to fix (a new model simply gets no workload).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datajax_operator.api.constants import COMPILE_GATE
from datajax_operator.api.status import DataJaxModelStatus
from datajax_operator.cache import ObjectCache
from datajax_operator.decide import Decision, Notice, conclude, decide
from datajax_operator.kube import (
    CHILD_KINDS,
    CONFIG_MAP,
    DATAJAX_MODEL,
    DEPLOYMENT,
    JOB,
    LEADER_WORKER_SET,
    POD,
    Kind,
    Kube,
    KubeError,
    kind_of,
)
from datajax_operator.observe import (
    gate_finished,
    gate_observation,
    gather,
    unscheduled,
    workload_observation,
)
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.problems import Problem
from datajax_operator.render.gate import GATE_CONTAINER, gate_labels
from datajax_operator.render.names import child_names, label_selector, selector_labels
from datajax_operator.status.evaluate import Evaluation
from datajax_operator.status.gate import gate_passes
from datajax_operator.status.observations import GateObservation, SidecarScrape
from datajax_operator.status.recent import Recent

log = logging.getLogger(__name__)

WORKLOAD_KINDS = (DEPLOYMENT.kind, LEADER_WORKER_SET.kind)

RENDERED_HASH = "datajax.dev/rendered-hash"
"""Annotation on every child: the hash of the object as rendered, so an unchanged child is not applied
again (a no-op apply costs a request, and a pass per model per interval adds up)."""


@dataclass(frozen=True)
class Outcome:
    """What one pass did, for the handlers (retry?), the operator's metrics and the next pass."""

    status: DataJaxModelStatus
    status_written: bool
    applied: tuple[str, ...]
    deleted: tuple[str, ...]
    waiting_for: str | None
    """An API the plan needs that the cluster does not serve yet: retry later."""
    workload_version: str | None = None
    """resourceVersion of the workload as this pass saw it: a watch event carrying it is the echo of
    what was already observed (the handlers skip it)."""
    recent: Recent = field(default_factory=Recent)
    """The judgement's memory, for the next pass of this model."""
    replicas: int | None = None
    """The replica count the decision rendered (None: no plan)."""


def _ref(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _uncached() -> ObjectCache:
    """A cache that knows nothing and keeps nothing: every read goes to the server (tests, tools)."""
    return ObjectCache(frozenset(), ttl=-1.0)


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


def _controlled_by(obj: dict[str, Any], uid: str) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences", [])
    )


def rendered_hash(obj: dict[str, Any]) -> str:
    """A digest of the rendered object (canonical JSON): equal digests, equal desired objects."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def stamped(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with its rendered hash in the ``RENDERED_HASH`` annotation, as it is applied."""
    meta = obj["metadata"]
    annotations = {**meta.get("annotations", {}), RENDERED_HASH: rendered_hash(obj)}
    return {**obj, "metadata": {**meta, "annotations": annotations}}


def drifted(rendered: Any, live: Any) -> bool:
    """Whether a field the operator renders no longer holds its rendered value on the server (a
    person's ``kubectl edit``, another controller): fields the server or others add around ours do
    not count. Lists compare element by element, scalars by value or by their text (the server
    writes ``8`` back for a rendered ``"8"`` quantity and the like)."""
    if isinstance(rendered, dict):
        return not isinstance(live, dict) or any(
            key not in live or drifted(value, live[key]) for key, value in rendered.items()
        )
    if isinstance(rendered, list):
        return (
            not isinstance(live, list)
            or len(live) != len(rendered)
            or any(drifted(r, v) for r, v in zip(rendered, live, strict=True))
        )
    return rendered != live and str(rendered) != str(live)


def _observed(kube: Kube, cache: ObjectCache, kind: Kind, namespace: str, name: str, *, uid: str) -> Any:
    """The child as last seen: from the cache, else from the server (the answer cached when it is
    absent or ours; an object of another owner is read again at every pass, it is not watched)."""
    known = cache.lookup(kind.kind, namespace, name)
    if known is not None:
        return known.obj
    found = kube.get(kind, namespace, name)
    if found is None:
        cache.absent(kind.kind, namespace, name)
    elif _controlled_by(found, uid):
        cache.put(found)
    return found


REJECTED_STATUSES = (400, 422)
"""The API server refuses the content itself: retrying the same object can never succeed."""


@dataclass
class _Applied:
    applied: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    current: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    """``Kind/name`` -> the child as it now is (the apply's answer, or as observed)."""
    refused: str | None = None
    deleted: list[str] = field(default_factory=list)


def _gate_pass(
    kube: Kube, objects: ObjectCache, raw: dict[str, Any], job: dict[str, Any]
) -> tuple[_Applied, GateObservation | None]:
    """Apply the gate Job (a new request's replaces the older ones) and read its verdict."""
    result = _apply_children(kube, objects, [job], raw["metadata"]["uid"])
    current = result.current.get(_ref(job))
    if result.applied:
        result.deleted = _delete_gate_jobs(kube, objects, raw, keep=job["metadata"]["name"])
    if current is None:  # refused, or its name taken by an object of another owner
        return result, None if result.refused else GateObservation(
            job["metadata"]["name"], failure=f"{_ref(job)} exists and is not controlled by this DataJaxModel"
        )
    return result, _gate(kube, current)


def _serving(
    kube: Kube, objects: ObjectCache, raw: dict[str, Any], desired: list[dict[str, Any]]
) -> dict[str, dict[str, Any] | None]:
    """The workload this model already serves with (ours only), as observed, while the gate holds."""
    uid = raw["metadata"]["uid"]
    found: dict[str, dict[str, Any] | None] = {}
    for obj in desired:
        if obj["kind"] in WORKLOAD_KINDS:
            meta = obj["metadata"]
            live = _observed(kube, objects, kind_of(obj), meta["namespace"], meta["name"], uid=uid)
            if live is not None and _controlled_by(live, uid):
                found[_ref(obj)] = live
    return found


def _apply_children(kube: Kube, cache: ObjectCache, desired: list[dict[str, Any]], uid: str) -> _Applied:
    """Apply every child whose name is free or already ours and whose rendered form changed."""
    result = _Applied()
    for obj in desired:
        meta = obj["metadata"]
        observed = _observed(kube, cache, kind_of(obj), meta["namespace"], meta["name"], uid=uid)
        if observed is not None and not _controlled_by(observed, uid):
            result.foreign.append(_ref(obj))
            continue
        form = stamped(obj)
        wanted = form["metadata"]["annotations"][RENDERED_HASH]
        if (
            observed is not None
            and observed["metadata"].get("annotations", {}).get(RENDERED_HASH) == wanted
            and not drifted(form, observed)
        ):
            result.current[_ref(obj)] = observed
            continue
        try:
            answer = kube.apply(form)
        except KubeError as err:
            if err.status not in REJECTED_STATUSES:
                raise
            result.refused = f"the API server refused {_ref(obj)}: {err}"
            return result
        cache.put(answer)
        result.applied.append(_ref(answer))
        result.current[_ref(obj)] = answer
    return result


def _delete_unwanted(
    kube: Kube, cache: ObjectCache, model: dict[str, Any], wanted: list[dict[str, Any]], lws_served: bool
) -> list[str]:
    """Delete the children of kinds the plan no longer wants (only those this model controls).

    Each kind of child has one deterministic name per model (``child_names``), so a kind the plan
    does not want has at most that one child of ours, looked up by name (in the cache first)."""
    meta = model["metadata"]
    wanted_kinds = {o["kind"] for o in wanted}
    names = child_names(meta["name"])
    deleted = []
    for kind in CHILD_KINDS:
        if kind.kind in wanted_kinds or (kind is LEADER_WORKER_SET and not lws_served):
            continue
        name = names[kind.kind]
        child = _observed(kube, cache, kind, meta["namespace"], name, uid=meta["uid"])
        if child is None or not _controlled_by(child, meta["uid"]):
            continue
        if kube.delete(kind, meta["namespace"], name, child["metadata"]["uid"]):
            deleted.append(f"{kind.kind}/{name}")
        cache.absent(kind.kind, meta["namespace"], name)
    return deleted


JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
"""The label the Job controller puts on its pods, beside the legacy unprefixed ``job-name``
(k8s.io/api batch/v1/types.go ``JobNameLabel``)."""


def _gate(kube: Kube, job: dict[str, Any]) -> GateObservation:
    """The gate Job's observation; its pods are listed only once the Job counts one that ended (the
    verdict is in a pod's status, the Job's own status has no message)."""
    if not gate_finished(job):
        return gate_observation(job, [], GATE_CONTAINER)
    name = job["metadata"]["name"]
    pods = kube.list(POD, job["metadata"]["namespace"], label_selector({JOB_NAME_LABEL: name}))
    return gate_observation(job, pods, GATE_CONTAINER)


def _delete_gate_jobs(kube: Kube, cache: ObjectCache, model: dict[str, Any], keep: str | None) -> list[str]:
    """Delete the model's gate Jobs other than ``keep`` (an older request's, or all when the gate was
    turned off); only those this model controls. One list, made only when the set may have changed."""
    meta = model["metadata"]
    deleted = []
    for job in kube.list(JOB, meta["namespace"], label_selector(gate_labels(meta["name"]))):
        name = job["metadata"]["name"]
        if name == keep or not _controlled_by(job, meta["uid"]):
            continue
        if kube.delete(JOB, meta["namespace"], name, job["metadata"]["uid"]):
            deleted.append(f"{JOB.kind}/{name}")
        cache.absent(JOB.kind, meta["namespace"], name)
    return deleted


def _gate_was_on(raw: dict[str, Any]) -> bool:
    """Whether the stored status carries a CompileGate condition (a gate Job may then exist)."""
    conditions = (raw.get("status") or {}).get("conditions") or []
    return any(c.get("type") == COMPILE_GATE for c in conditions if isinstance(c, dict))


def _status_document(status: DataJaxModelStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def event_name(raw: dict[str, Any], notice: Notice) -> str | None:
    """The Event's own name for a notice keyed by its decision (None: a server-generated name)."""
    if notice.key is None:
        return None
    meta = raw["metadata"]
    digest = hashlib.sha256(f"{meta['uid']}/{notice.reason}/{notice.key}".encode()).hexdigest()[:16]
    return f"{meta['name'][:200]}.{notice.reason.lower()}.{digest}"


def _post(kube: Kube, raw: dict[str, Any], notice: Notice, now: datetime) -> None:
    meta = raw["metadata"]
    try:
        kube.event(
            raw,
            event_type=notice.event_type,
            reason=notice.reason,
            message=notice.message,
            now=now,
            name=event_name(raw, notice),
        )
    except KubeError as err:  # an Event is a courtesy; never fail a reconcile over one
        log.warning("event for %s/%s not posted: %s", meta["namespace"], meta["name"], err)


def _unscheduled(kube: Kube, namespace: str, name: str, workload: dict[str, Any] | None) -> str | None:
    """Why the model's pods wait for a node, read only while its workload has fewer available slices
    than desired (one list of the model's pods). A role without pod reads costs the detail, not the
    pass."""
    if workload is None:
        return None
    observed = workload_observation(workload)
    if observed.available >= observed.desired:
        return None
    try:
        return unscheduled(kube.list(POD, namespace, label_selector(selector_labels(name))))
    except KubeError as err:
        log.warning("%s/%s: pods not read: %s", namespace, name, err)
        return None


def _model(kube: Kube, cache: ObjectCache, namespace: str, name: str) -> dict[str, Any] | None:
    known = cache.lookup(DATAJAX_MODEL.kind, namespace, name)
    if known is not None:
        return known.obj
    found = kube.get(DATAJAX_MODEL, namespace, name)
    if found is None:
        cache.absent(DATAJAX_MODEL.kind, namespace, name)
    else:
        cache.put(found)
    return found


def reconcile(
    kube: Kube,
    namespace: str,
    name: str,
    config: OperatorConfig,
    now: datetime,
    *,
    sidecars: Sequence[SidecarScrape] = (),
    sidecars_unlisted: str | None = None,
    cache: ObjectCache | None = None,
    recent: Recent | None = None,
) -> Outcome | None:
    """Drive one model's children and status to its spec. None when the model is gone or going.

    ``now`` is the clock of this pass (UTC, whole seconds), the time of any condition transition;
    ``sidecars`` are this pass's scrapes of the model's sidecar endpoints (none found: empty);
    ``sidecars_unlisted`` is why the endpoints could not be listed at all (the API server refused the
    EndpointSlices): the pass goes on without metrics and says so in MetricsAvailable;
    ``cache`` the watch cache (None: read everything from the server); ``recent`` what the last
    pass's judgement remembered (``Outcome.recent``).
    """
    objects = cache if cache is not None else _uncached()
    raw = _model(kube, objects, namespace, name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return None
    try:
        return _drive(
            kube,
            objects,
            raw,
            config,
            now,
            sidecars=sidecars,
            sidecars_unlisted=sidecars_unlisted,
            recent=recent,
        )
    except KubeError as err:
        # The watch cache can still hold a model whose namespace is being deleted: the namespace
        # controller removes it soon, and nothing can be created there meanwhile. Not an error.
        if not err.namespace_gone:
            raise
        log.info("%s/%s: the namespace is being deleted, nothing to reconcile: %s", namespace, name, err)
        return None


def _drive(
    kube: Kube,
    objects: ObjectCache,
    raw: dict[str, Any],
    config: OperatorConfig,
    now: datetime,
    *,
    sidecars: Sequence[SidecarScrape],
    sidecars_unlisted: str | None,
    recent: Recent | None,
) -> Outcome:
    """The pass over a model that exists: children, then the status (``reconcile``'s arguments)."""
    namespace, name = raw["metadata"]["namespace"], raw["metadata"]["name"]
    decision = decide(
        raw,
        config,
        sidecars,
        now,
        wave_spec=_wave_spec(kube, raw),
        recent=recent,
        sidecars_unlisted=sidecars_unlisted,
    )
    desired = decision.desired
    lws_served = kube.serves(LEADER_WORKER_SET)
    waiting_for = None
    if not lws_served and any(o["kind"] == LEADER_WORKER_SET.kind for o in desired):
        waiting_for = f"{LEADER_WORKER_SET.api_version} {LEADER_WORKER_SET.kind}"
        desired = [o for o in desired if o["kind"] != LEADER_WORKER_SET.kind]
    result = _Applied()
    deleted: list[str] = []
    gate: GateObservation | None = None
    # An edit the planner rejects must not take a serving model down: what runs keeps running,
    # untouched, and SpecValid=False says what to fix. A new model simply gets no workload.
    if decision.evaluation.plan is not None:
        if decision.gate is not None:
            result, gate = _gate_pass(kube, objects, raw, decision.gate)
            deleted = result.deleted
        if result.refused is None and gate_passes(gate):
            children = _apply_children(kube, objects, desired, raw["metadata"]["uid"])
            result = _Applied(
                applied=[*result.applied, *children.applied],
                foreign=[*result.foreign, *children.foreign],
                current=children.current,
                refused=children.refused,
            )
        elif result.refused is None:
            # Held by the gate like an invalid edit: nothing of the workload is applied or deleted;
            # the workload already serving (if any) is only observed.
            result.current |= _serving(kube, objects, raw, desired)
        if result.refused is not None:
            # Flagged like a spec the planner rejects, and likewise nothing is deleted: the refusal
            # may come from a later child than the workload.
            log.warning("%s/%s: %s", namespace, name, result.refused)
            decision = Decision(
                Evaluation(plan=None, problems=[Problem("spec", result.refused)]), None, [], decision.refresh
            )
            desired = []
        elif gate_passes(gate):
            deleted += _delete_unwanted(kube, objects, raw, desired, lws_served)
    if decision.evaluation.plan is not None and decision.gate is None and _gate_was_on(raw):
        deleted += _delete_gate_jobs(kube, objects, raw, keep=None)

    workload = next((o for o in desired if o["kind"] in WORKLOAD_KINDS), None)
    found = result.current.get(_ref(workload)) if workload is not None else None
    pending = _unscheduled(kube, namespace, name, found)
    observations = gather(found, waiting_for, sidecars, tuple(result.foreign), pending, gate=gate)
    conclusion = conclude(raw, decision, observations, now)

    # The actions' Events before the status write: a crash in between posts the same decision again
    # at the next pass, under the same Event name, which the API server refuses as a duplicate.
    for notice in conclusion.actions:
        log.info("%s/%s: %s: %s", namespace, name, notice.reason, notice.message)
        _post(kube, raw, notice, now)
    if conclusion.write:
        written = kube.apply_status(DATAJAX_MODEL, namespace, name, _status_document(conclusion.status))
        objects.put(written)
        for notice in conclusion.notices:
            if not notice.action:
                _post(kube, raw, notice, now)
    return Outcome(
        status=conclusion.status,
        status_written=conclusion.write,
        applied=tuple(result.applied),
        deleted=tuple(deleted),
        waiting_for=waiting_for,
        workload_version=found["metadata"].get("resourceVersion") if found else None,
        recent=decision.judgement.recent if decision.judgement is not None else (recent or Recent()),
        replicas=decision.replicas,
    )
