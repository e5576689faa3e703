"""render_objects: the child manifests of one DataJaxModel, a pure function of (model, plan, config)
and the replica count the cost enforcement allows.

Children: the sidecar settings ConfigMap, the workload (a Deployment for a single-host slice, a
LeaderWorkerSet of size = hosts for a multi-host slice) and a Service in front of the serving (leader)
pods. A plan bundle is not copied into a ConfigMap of ours: the user's ConfigMap is mounted directly
(see `pod._volumes`), so the bundle never passes through the operator (the only user ConfigMap data it
reads is the wave spec it plans with, `spec.plan.waveSpecRef`) and a new bundle name rolls the pods.
"""

import hashlib
import json
from typing import Any, Final

from datajax_operator.api.constants import API_VERSION, KIND
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import Plan
from datajax_operator.plan.vllm import VLLM_PORT
from datajax_operator.render.names import (
    ROLE_LABEL,
    base_name,
    common_labels,
    selector_labels,
    sidecar_settings_name,
)
from datajax_operator.render.pod import SIDECAR_SETTINGS_KEY, pod_template, sidecar_settings

SPEC_HASH_ANNOTATION: Final = "datajax.dev/spec-hash"
LWS_API_VERSION: Final = "leaderworkerset.x-k8s.io/v1"
EXCLUSIVE_TOPOLOGY: Final = "leaderworkerset.sigs.k8s.io/exclusive-topology"


def spec_hash(model: DataJaxModel) -> str:
    """A short hash of the whole spec, on the workload's metadata only (never its pod template).

    It tells a reader which spec a workload was rendered from; keeping it out of the template means a
    change of, say, replicas or cost.action does not restart pods (and recompile XLA).
    """
    # a spec without scaling hashes as it did before the field existed: no needless workload update
    unset = {"scaling"} if model.spec.scaling is None else None
    canonical = json.dumps(
        model.spec.model_dump(mode="json", by_alias=True, exclude=unset),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _metadata(model: DataJaxModel, name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if model.metadata.namespace:
        meta["namespace"] = model.metadata.namespace
    meta["labels"] = common_labels(model.metadata.name)
    if annotations:
        meta["annotations"] = annotations
    if model.metadata.uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": model.metadata.name,
                "uid": model.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta


def deployment(model: DataJaxModel, plan: Plan, config: OperatorConfig, replicas: int) -> dict[str, Any]:
    """A Deployment of single-host slices.

    Updates replace pods one at a time without surge: a surge pod would need a spare TPU slice, which a
    fixed-size node pool rarely has, and would stay Pending and stall the rollout.
    """
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            model, base_name(model.metadata.name), {SPEC_HASH_ANNOTATION: spec_hash(model)}
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(model.metadata.name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": pod_template(model, plan, config, "leader"),
        },
    }


def leader_worker_set(
    model: DataJaxModel, plan: Plan, config: OperatorConfig, replicas: int
) -> dict[str, Any]:
    """A LeaderWorkerSet whose every group is one multi-host slice (size = hosts).

    The exclusive-topology annotation keeps each group on one node pool, i.e. one physical slice; a
    restart of any pod recreates the group, since a slice's Ray cluster and XLA programs span all hosts.
    """
    annotations = {
        SPEC_HASH_ANNOTATION: spec_hash(model),
        EXCLUSIVE_TOPOLOGY: "cloud.google.com/gke-nodepool",
    }
    return {
        "apiVersion": LWS_API_VERSION,
        "kind": "LeaderWorkerSet",
        "metadata": _metadata(model, base_name(model.metadata.name), annotations),
        "spec": {
            "replicas": replicas,
            "startupPolicy": "LeaderCreated",
            "rolloutStrategy": {
                "type": "RollingUpdate",
                "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "leaderWorkerTemplate": {
                "size": plan.placement.hosts,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": pod_template(model, plan, config, "leader"),
                "workerTemplate": pod_template(model, plan, config, "worker"),
            },
        },
    }


def service(model: DataJaxModel, config: OperatorConfig) -> dict[str, Any]:
    """The Service in front of the serving pods (leaders only): OpenAI API on http, sidecar on metrics."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(model, base_name(model.metadata.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": {**selector_labels(model.metadata.name), ROLE_LABEL: "leader"},
            "ports": [
                {"name": "http", "port": VLLM_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "metrics", "port": config.sidecar_port, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    }


def sidecar_config_map(model: DataJaxModel, plan: Plan) -> dict[str, Any]:
    """The settings the sidecar re-reads every interval, mounted at /etc/datajax/sidecar."""
    text = json.dumps(sidecar_settings(model, plan), sort_keys=True, indent=2) + "\n"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(model, sidecar_settings_name(model.metadata.name)),
        "data": {SIDECAR_SETTINGS_KEY: text},
    }


def render_objects(
    model: DataJaxModel, plan: Plan, config: OperatorConfig, *, replicas: int | None = None
) -> list[dict[str, Any]]:
    """Every child manifest of the model, in apply order: the settings ConfigMap before the pods
    that mount it, then the workload and its Service. ``replicas`` is the slice count the cost
    enforcement allows (a ScaleDown or Suspend in effect); None means ``spec.replicas``."""
    count = model.spec.replicas if replicas is None else replicas
    workload = (
        deployment(model, plan, config, count)
        if plan.placement.workload == "Deployment"
        else leader_worker_set(model, plan, config, count)
    )
    return [sidecar_config_map(model, plan), workload, service(model, config)]
