"""The serving pod: the vLLM container, the datajax sidecar, scheduling on the TPU node pool, volumes.

Everything here is a pure function of the spec, the plan and the config, so the pod template changes
only when something a pod depends on changes (no timestamps, no operator version, no whole-spec hash).
"""

import copy
import json
import math
from typing import Any, Final, Literal

from datajax_operator.api.resource import DataJaxModel
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import Plan
from datajax_operator.plan.storage import serving_image
from datajax_operator.plan.vllm import VLLM_PORT
from datajax_operator.render import storage
from datajax_operator.render.names import (
    GENERATION_LABEL,
    ROLE_LABEL,
    TOPOLOGY_LABEL,
    common_labels,
    sidecar_settings_name,
)

Role = Literal["leader", "worker"]
"""A single-host pod is the leader of a slice of one."""

VLLM_CONTAINER: Final = "vllm"
SIDECAR_CONTAINER: Final = "datajax-sidecar"
RUN_DIR: Final = "/var/run/datajax"
PLAN_DIR: Final = "/etc/datajax/plan"
PLAN_BUNDLE: Final = f"{PLAN_DIR}/bundle.json"
PLAN_STATUS: Final = f"{RUN_DIR}/plan-status.json"
SIDECAR_SETTINGS_DIR: Final = "/etc/datajax/sidecar"
SIDECAR_SETTINGS_KEY: Final = "settings.json"
SIDECAR_SETTINGS: Final = f"{SIDECAR_SETTINGS_DIR}/{SIDECAR_SETTINGS_KEY}"
INSTANCE_TYPE_LABEL: Final = "node.kubernetes.io/instance-type"
RAY_PORT: Final = 6379
STARTUP_PERIOD_SECONDS: Final = 10
SIDECAR_UID: Final = 65532

# The leader of a multi-host slice starts the Ray head, waits until every host of the group has joined
# (LWS sets LWS_GROUP_SIZE), then execs vLLM with the plan's arguments ("$@"), so vLLM stays PID 1's
# child that receives SIGTERM.
LEADER_SCRIPT: Final = f"""set -euo pipefail
ray start --head --port={RAY_PORT} --disable-usage-stats
until python3 -c 'import ray, sys; ray.init(address="auto", logging_level="ERROR"); \
sys.exit(0 if sum(1 for n in ray.nodes() if n["Alive"]) >= int(sys.argv[1]) else 1)' "${{LWS_GROUP_SIZE}}"; do
  sleep 5
done
exec vllm serve "$@"
"""
# A worker joins the leader's Ray cluster (LWS sets LWS_LEADER_ADDRESS) and blocks; it retries until
# the head is up, because LWS starts the whole group at once.
WORKER_SCRIPT: Final = f"""set -uo pipefail
until ray start --address="${{LWS_LEADER_ADDRESS}}:{RAY_PORT}" --disable-usage-stats --block; do
  sleep 5
done
"""


VLLM_SECURITY_CONTEXT: Final = {
    "privileged": False,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""The least privilege of the TPU runtime (docs/security.md): the TPU chips reach the container as
``google.com/tpu`` device-plugin resources, so no privileged mode, no capability, no escalation. It
keeps the image's user (root in the vLLM TPU image, whose caches live under its home) and a writable
root filesystem (XLA and Hugging Face caches): the Pod Security "baseline" profile, not "restricted"."""


def _has_bundle(model: DataJaxModel) -> bool:
    """A plan bundle is set, and mounted; the wave spec is not mounted (the operator reads it to plan)."""
    return model.spec.plan is not None and model.spec.plan.config_map_ref is not None


def expected_placement(plan: Plan) -> str:
    """The slice the plan paid for, as the runtime's device check reads it (DATAJAX_EXPECTED_PLACEMENT).

    Every pod of a slice gets it: on a multi-host slice each host checks its own chips (`chipsPerHost`),
    since only the leader runs JAX at plugin time and a leader-side check of the whole slice would wait
    for peers that never join. Compact, sorted JSON so the pod template only changes when the placement
    does.
    """
    p = plan.placement
    document = {
        "generation": p.generation,
        "topology": p.topology,
        "chips": p.chips,
        "hosts": p.hosts,
        "chipsPerHost": p.chips_per_host,
        "devicesPerChip": p.devices_per_chip,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _vllm_env(model: DataJaxModel, plan: Plan, config: OperatorConfig, role: Role) -> list[dict[str, Any]]:
    """The vLLM container's environment, the same on every pod of a slice except the plan status file.

    vLLM loads general plugins in every process it starts, the Ray workers on the worker hosts included
    (vllm `vllm/plugins/__init__.py`), and those workers take DATAJAX_* from their own pod: vLLM forwards
    only its own prefixes (VLLM_, HF_, ...) to Ray workers (vllm `vllm/ray/ray_env.py`). So the bundle
    path, the expected placement and the cache path are set, and the bundle mounted, on every pod. The
    plan status is written where the sidecar reads it, on the leader only.
    """
    spec = model.spec
    env: list[dict[str, Any]] = []
    ref = spec.model.hf_token_secret_ref
    if ref is not None:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    if _has_bundle(model):
        env.append({"name": "DATAJAX_PLAN_BUNDLE", "value": PLAN_BUNDLE})
        if role == "leader":
            env.append({"name": "DATAJAX_PLAN_STATUS", "value": PLAN_STATUS})
    # The runtime image's vLLM plugin checks the chips this host sees against it at start-up.
    env.append({"name": "DATAJAX_EXPECTED_PLACEMENT", "value": expected_placement(plan)})
    if plan.placement.hosts > 1:
        env.append({"name": "TPU_MULTIHOST_BACKEND", "value": "ray"})
    env.append({"name": "VLLM_XLA_CACHE_PATH", "value": plan.storage.xla_cache_dir})
    env.extend(e.model_dump(by_alias=True, exclude_none=True) for e in spec.serving.env)
    return env


def _vllm_mounts(model: DataJaxModel, role: Role) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    if role == "leader":
        mounts.append({"name": "datajax-run", "mountPath": RUN_DIR})
    if _has_bundle(model):
        mounts.append({"name": "datajax-plan", "mountPath": PLAN_DIR, "readOnly": True})
    mounts.extend(storage.mounts(model))
    return mounts


def _health_probe(period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def vllm_container(model: DataJaxModel, plan: Plan, config: OperatorConfig, role: Role) -> dict[str, Any]:
    """The vLLM container: `vllm serve` on a single host, Ray head + vLLM on a leader, Ray on a worker."""
    multihost = plan.placement.hosts > 1
    chips = str(plan.placement.chips_per_host)
    container: dict[str, Any] = {"name": VLLM_CONTAINER, "image": serving_image(model, config)}
    if role == "worker":
        container["command"] = ["/bin/bash", "-c", WORKER_SCRIPT]
    elif multihost:
        container["command"] = ["/bin/bash", "-c", LEADER_SCRIPT, "datajax-leader"]
        container["args"] = list(plan.vllm_args)
    else:
        container["command"] = ["vllm", "serve"]
        container["args"] = list(plan.vllm_args)
    if role == "leader":
        container["ports"] = [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}]
    container["env"] = _vllm_env(model, plan, config, role)
    requests = {"google.com/tpu": chips}
    if plan.storage.size_gi is not None:
        # The weights' emptyDir is node-local disk: request it so the scheduler places the pod where the
        # checkpoint fits, rather than letting the kubelet evict it mid-download.
        requests["ephemeral-storage"] = f"{plan.storage.size_gi}Gi"
    container["resources"] = {"requests": requests, "limits": {"google.com/tpu": chips}}
    container["volumeMounts"] = _vllm_mounts(model, role)
    container["securityContext"] = copy.deepcopy(VLLM_SECURITY_CONTEXT)
    if role == "leader":
        startup = math.ceil(model.spec.serving.startup_timeout_seconds / STARTUP_PERIOD_SECONDS)
        container["startupProbe"] = _health_probe(STARTUP_PERIOD_SECONDS, 5, startup)
        container["livenessProbe"] = _health_probe(15, 5, 4)
        container["readinessProbe"] = _health_probe(5, 3, 3)
    return container


def sidecar_settings(model: DataJaxModel, plan: Plan) -> dict[str, Any]:
    """The sidecar's cost settings (`datajax-sidecar serve --settings`), rendered into the
    `<model>-sidecar` ConfigMap rather than onto the command line: a new ceiling, price, window or SLO
    then reaches the running sidecar through the mounted file and never restarts vLLM."""
    cost = model.spec.cost
    return {
        "chips": plan.placement.chips,
        "usdPerChipHour": plan.cost.usd_per_chip_hour,
        "ceilingUSDPerMillionTokens": cost.ceiling_usd_per_million_tokens,
        "basis": cost.basis,
        "window": cost.window,
        "minTokensPerSecond": cost.min_tokens_per_second,
        "sloP95Seconds": model.spec.slo.p95_latency_seconds if model.spec.slo is not None else None,
    }


def sidecar_args(model: DataJaxModel, plan: Plan, config: OperatorConfig) -> list[str]:
    """`datajax-sidecar serve ...`: only what the pod itself fixes (ports, interval, plan status file,
    model name); the cost settings come from the mounted settings file."""
    args = [
        "serve",
        "--upstream",
        f"http://127.0.0.1:{VLLM_PORT}/metrics",
        "--port",
        str(config.sidecar_port),
        "--settings",
        SIDECAR_SETTINGS,
        "--interval",
        config.sidecar_interval,
    ]
    if _has_bundle(model):
        args += ["--plan-status", PLAN_STATUS]
    args += ["--xla-cache", plan.storage.xla_cache_dir]
    args += ["--model", plan.served_name]
    return args


def runtime_security_context() -> dict[str, Any]:
    """The runtime image's containers (the sidecar, the compile gate): its non-root user, a read-only
    root filesystem (only mounted volumes are writable), no capabilities, no privilege escalation."""
    return {
        "runAsNonRoot": True,
        "runAsUser": SIDECAR_UID,
        "runAsGroup": SIDECAR_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def sidecar_container(model: DataJaxModel, plan: Plan, config: OperatorConfig) -> dict[str, Any]:
    """The metrics sidecar, locked down: it only reads vLLM's /metrics and a file, and serves /metrics."""
    return {
        "name": SIDECAR_CONTAINER,
        "image": config.runtime_image,
        "command": ["datajax-sidecar"],
        "args": sidecar_args(model, plan, config),
        "ports": [{"name": "metrics", "containerPort": config.sidecar_port, "protocol": "TCP"}],
        "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "livenessProbe": {"tcpSocket": {"port": "metrics"}, "periodSeconds": 20, "failureThreshold": 3},
        "securityContext": runtime_security_context(),
        "volumeMounts": [
            {"name": "datajax-run", "mountPath": RUN_DIR, "readOnly": True},
            {"name": "sidecar-settings", "mountPath": SIDECAR_SETTINGS_DIR, "readOnly": True},
            {"name": "sidecar-tmp", "mountPath": "/tmp"},
            # Read-only view of the compile cache, to report hit/miss and start-up seconds.
            *({**m, "readOnly": True} for m in storage.cache_mounts(model)),
        ],
    }


def node_selector(model: DataJaxModel, plan: Plan) -> dict[str, str]:
    """GKE TPU node labels of the slice, plus Spot or a specific reservation when asked."""
    tpu = model.spec.tpu
    selector = {
        "cloud.google.com/gke-tpu-accelerator": plan.placement.accelerator,
        "cloud.google.com/gke-tpu-topology": plan.placement.topology,
    }
    if plan.placement.ambiguous_topology:
        # v5e/v6e 2x4 exists as one 8-chip VM and as two 4-chip VMs, both labelled gke-tpu-topology=2x4:
        # without the machine type a two-host group can land on one 8-chip node and a one-host pod can
        # wait forever on a 4-chip pool (GKE "Plan TPUs in GKE"; node.kubernetes.io/instance-type is the
        # well-known node label of the machine type).
        selector[INSTANCE_TYPE_LABEL] = plan.placement.machine_type
    if tpu.spot:
        selector["cloud.google.com/gke-spot"] = "true"
    if tpu.reservation is not None:
        selector["cloud.google.com/reservation-name"] = tpu.reservation
        selector["cloud.google.com/reservation-affinity"] = "specific"
    return selector


def tolerations(model: DataJaxModel) -> list[dict[str, str]]:
    """TPU nodes carry the google.com/tpu taint; Spot nodes may carry cloud.google.com/gke-spot."""
    tols = [{"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"}]
    if model.spec.tpu.spot:
        tols.append(
            {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        )
    return tols


def _volumes(model: DataJaxModel, plan: Plan, role: Role) -> list[dict[str, Any]]:
    spec = model.spec
    volumes: list[dict[str, Any]] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    if role == "leader":
        volumes.append({"name": "datajax-run", "emptyDir": {}})
        volumes.append({"name": "sidecar-tmp", "emptyDir": {"sizeLimit": "64Mi"}})
        volumes.append(
            {"name": "sidecar-settings", "configMap": {"name": sidecar_settings_name(model.metadata.name)}}
        )
    ref = spec.plan.config_map_ref if spec.plan is not None else None
    if ref is not None:
        bundle = {"configMap": {"name": ref.name, "items": [{"key": ref.key, "path": "bundle.json"}]}}
        volumes.append({"name": "datajax-plan", "projected": {"sources": [bundle]}})
    volumes.extend(storage.volumes(model, plan))
    return volumes


def pod_template(model: DataJaxModel, plan: Plan, config: OperatorConfig, role: Role) -> dict[str, Any]:
    """The pod template of a leader (or single-host pod) or of a multi-host worker."""
    containers = [vllm_container(model, plan, config, role)]
    if role == "leader":
        containers.append(sidecar_container(model, plan, config))
    annotations = {"kubectl.kubernetes.io/default-container": VLLM_CONTAINER}
    if storage.uses_gcs_fuse(plan):
        # GKE injects the Cloud Storage FUSE sidecar only into pods that carry these annotations.
        annotations.update(storage.GCSFUSE_ANNOTATIONS)
    pod_spec: dict[str, Any] = {}
    if model.spec.serving.service_account_name is not None:
        pod_spec["serviceAccountName"] = model.spec.serving.service_account_name
    return {
        "metadata": {
            "labels": {
                **common_labels(model.metadata.name),
                ROLE_LABEL: role,
                GENERATION_LABEL: plan.placement.generation,
                TOPOLOGY_LABEL: plan.placement.topology,
            },
            "annotations": annotations,
        },
        "spec": {
            **pod_spec,
            # Service links would inject e.g. VLLM_PORT=tcp://... for a Service named vllm, which vLLM
            # reads as its own port setting.
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 60,
            "nodeSelector": node_selector(model, plan),
            "tolerations": tolerations(model),
            "containers": containers,
            "volumes": _volumes(model, plan, role),
        },
    }
