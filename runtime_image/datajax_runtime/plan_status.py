"""The registration outcome the vLLM plugin writes and the sidecar exports.

The two run in different containers of the serving pod (vLLM as root, the sidecar as UID 65532) and
share only the `/var/run/datajax` emptyDir, so the hand-over is a small JSON file, written atomically
and world-readable so the non-root sidecar can read what the root plugin wrote.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["PlanStatus", "read_plan_status", "write_plan_status"]


@dataclass(frozen=True)
class PlanStatus:
    """Whether the plan's architecture is registered with tpu-inference, and what the plan is."""

    registered: bool
    reason: str
    """CamelCase (Registered, NoBundle, InvalidBundle, ...): the operator copies it into the
    PlanRegistered condition."""
    message: str
    model: str = ""
    architecture: str = ""
    implementation: str = ""
    mesh: str = ""
    hash: str = ""
    bundle_version: int = 0
    devices: dict[str, Any] | None = None
    """The start-up device check (`DeviceCheck.to_json()`: ok, message, expected, observed, problems),
    or None when the pod was given no expected placement."""

    @property
    def devices_match(self) -> bool | None:
        """Whether JAX's devices match the planned slice; None when no check ran."""
        if self.devices is None:
            return None
        return self.devices.get("ok") is True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlanStatus:
        known = {f.name for f in fields(cls)}
        if not isinstance(data.get("registered"), bool) or not isinstance(data.get("reason"), str):
            raise ValueError("plan status needs a boolean 'registered' and a string 'reason'")
        if data.get("devices") is not None and not isinstance(data["devices"], dict):
            raise ValueError("plan status 'devices' must be an object")
        return cls(**{k: v for k, v in data.items() if k in known})


def write_plan_status(path: str | os.PathLike[str], status: PlanStatus) -> None:
    """Write atomically (readers never see half a file) with mode 0644 (the sidecar is not root)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".plan-status-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(status.to_json(), handle, sort_keys=True, indent=2)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_plan_status(path: str | os.PathLike[str]) -> PlanStatus | None:
    """The status the plugin wrote, or None while there is none (vLLM still starting)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: plan status must be a JSON object")
    return PlanStatus.from_json(data)
