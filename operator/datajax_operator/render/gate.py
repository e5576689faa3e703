"""The compile gate's Job (``spec.plan.compileGate``): a pure function of the model, the gate request and
the operator config.

The operator's image has no libtpu, so the compile runs in a pod of the runtime image (vLLM TPU plus
``datajax_runtime``, the image of the serving pods' sidecar), which has JAX, libtpu and
``datajax_runtime.compile_gate``. libtpu compiles for a described topology without a chip, so the pod
asks for no TPU and selects no TPU node: it runs on any CPU node. Its compact verdict goes to the
container's termination message, which the operator reads back from the pod's status.

The request travels as a container argument, not in a ConfigMap: it is under a kilobyte of JSON,
fixed for the Job's life (its name carries the request's hash), and so needs no second object to own,
keep in step and delete; ``kubectl describe`` shows what was compiled.
"""

import hashlib
import json
from typing import Any, Final

from datajax_operator.api.constants import API_VERSION, KIND
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.gate_request import COMPILE_ONLY_ENV, gate_request, model_shape_from_spec
from datajax_operator.plan.planner import Plan
from datajax_operator.render.names import (
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    MANAGER,
    NAME_LABEL,
    base_name,
    common_labels,
)
from datajax_operator.render.pod import runtime_security_context

GATE_COMPONENT: Final = "compile-gate"
GATE_APP_NAME: Final = "datajax-compile-gate"
"""The gate pod's app name: not the serving pods' (``datajax-model``), so no serving selector (the
Service, the unscheduled-pod check) ever picks the gate pod."""
GATE_CONTAINER: Final = "compile-gate"
TERMINATION_LOG: Final = "/dev/termination-log"
BACKOFF_LIMIT: Final = 1
"""One retry: the compile is deterministic, so a second failure is not luck (an evicted pod is the
case a retry serves)."""
GATE_RESOURCES: Final = {
    "requests": {"cpu": "2", "memory": "2Gi"},
    "limits": {"memory": "4Gi"},
}
"""Two CPUs: the runtime compiles the decode and prefill steps side by side in two threads (a Qwen2.5
1.5B plan takes ~33 CPU-seconds, Llama 3.1 70B on v6e 2x4 ~80: docs/benchmarks.md). Memory: the
compile's peak resident size measured here was 0.80 GB for Qwen2.5 1.5B on v5e 2x2 and 0.99 GB for
Llama 3.1 70B on v6e 2x4 (the weights are abstract, and the layers one scanned program, so it grows
little with the model); the limit leaves four times that."""


def gate_job_name(model_name: str, request: dict[str, Any], image: str) -> str:
    """``<model>-gate-<hash>``: the hash covers the request and the image, everything the pod's fixed
    template depends on, so a changed plan (or a new runtime image) gets a new Job (a Job's template
    cannot be changed in place) while an unchanged one keeps its Job and verdict. At most
    45 + 16 = 61 characters, under the 63 a Job name (its pods' ``job-name`` label) may have."""
    canonical = json.dumps({"request": request, "image": image}, sort_keys=True, separators=(",", ":"))
    return f"{base_name(model_name)}-gate-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"


def gate_labels(model_name: str) -> dict[str, str]:
    """Labels of the gate Job (the operator lists its model's gate Jobs by them)."""
    return {**common_labels(model_name), COMPONENT_LABEL: GATE_COMPONENT}


def gate_job(model: DataJaxModel, request: dict[str, Any], config: OperatorConfig) -> dict[str, Any]:
    """The batch/v1 Job that compiles ``request`` and ends with the compact verdict as its container's
    termination message (``datajax_runtime.compile_gate --termination-log``)."""
    name = model.metadata.name
    meta: dict[str, Any] = {
        "name": gate_job_name(name, request, config.runtime_image),
        "labels": gate_labels(name),
    }
    if model.metadata.namespace:
        meta["namespace"] = model.metadata.namespace
    if model.metadata.uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": name,
                "uid": model.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    pod_labels = {
        NAME_LABEL: GATE_APP_NAME,
        INSTANCE_LABEL: base_name(name),
        MANAGED_BY_LABEL: MANAGER,
        COMPONENT_LABEL: GATE_COMPONENT,
    }
    container = {
        "name": GATE_CONTAINER,
        "image": config.runtime_image,
        "command": ["python3", "-m", "datajax_runtime.compile_gate"],
        "args": [
            "--request",
            json.dumps(request, sort_keys=True, separators=(",", ":")),
            "--termination-log",
            TERMINATION_LOG,
        ],
        "env": [
            *({"name": k, "value": v} for k, v in COMPILE_ONLY_ENV.items()),
            {"name": "HOME", "value": "/tmp"},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
        ],
        "resources": GATE_RESOURCES,
        "terminationMessagePath": TERMINATION_LOG,
        # A crash before the verdict leaves the log's tail as the message: GateFailed then says why.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": runtime_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }


def planned_gate(model: DataJaxModel, plan: Plan, config: OperatorConfig) -> dict[str, Any] | None:
    """The gate Job the spec asks for, None without ``spec.plan.compileGate``: what the operator applies
    before the workload and what `plan` lists first. Raises ``GateError`` when the spec cannot be gated."""
    if model.spec.plan is None or not model.spec.plan.compile_gate:
        return None
    return gate_job(model, gate_request(plan, model.spec, model_shape_from_spec(model.spec)), config)
