"""Deterministic names and labels of a model's children.

The workload and Service are named after the model. A LeaderWorkerSet names StatefulSets, pods and a
headless Service after itself and adds suffixes (`-0`, `-0-1`, a revision hash in a label), so the base
name is kept to 45 characters, a DNS-1035 label (a Service name must start with a letter); names that
need changing are truncated and suffixed with a hash of the original, so two models never collide.
"""

import hashlib
import re
from typing import Final

MAX_BASE_NAME: Final = 45
_INVALID: Final = re.compile(r"[^a-z0-9-]+")

NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
ROLE_LABEL: Final = "datajax.dev/role"
# On serving pods, so monitoring can group figures by TPU (the chart relabels them onto every series).
GENERATION_LABEL: Final = "datajax.dev/tpu-generation"
TOPOLOGY_LABEL: Final = "datajax.dev/tpu-topology"
APP_NAME: Final = "datajax-model"
MANAGER: Final = "datajax-operator"


def base_name(model_name: str) -> str:
    """The name of the model's workload and Service, and its instance label value."""
    cleaned = _INVALID.sub("-", model_name.lower()).strip("-")
    if cleaned == model_name and len(cleaned) <= MAX_BASE_NAME and cleaned[:1].isalpha():
        return cleaned
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:8]
    stem = cleaned[: MAX_BASE_NAME - len(digest) - 1].strip("-")
    if not stem[:1].isalpha():
        stem = f"m-{stem}"[: MAX_BASE_NAME - len(digest) - 1].strip("-")
    return f"{stem}-{digest}"


def sidecar_settings_name(model_name: str) -> str:
    """The ConfigMap holding the sidecar's cost settings (`<model>-sidecar`)."""
    return f"{base_name(model_name)}-sidecar"


def selector_labels(model_name: str) -> dict[str, str]:
    """Labels that select the model's serving pods; never changed, so selectors stay immutable-safe."""
    return {NAME_LABEL: APP_NAME, INSTANCE_LABEL: base_name(model_name)}


def label_selector(labels: dict[str, str]) -> str:
    """``labels`` as a label-selector string (``k=v,...``, sorted, so equal sets give equal strings)."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def common_labels(model_name: str) -> dict[str, str]:
    """The app.kubernetes.io labels every child carries."""
    return {
        **selector_labels(model_name),
        MANAGED_BY_LABEL: MANAGER,
        COMPONENT_LABEL: "serving",
    }


def child_names(model_name: str) -> dict[str, str]:
    """The one name each kind of child of a model has (the reconcile finds unwanted children by it)."""
    base = base_name(model_name)
    return {
        "Deployment": base,
        "LeaderWorkerSet": base,
        "Service": base,
        "ConfigMap": sidecar_settings_name(model_name),
    }
