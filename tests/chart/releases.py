"""Helpers of the chart tests that talk to the session's real API server: helm releases, their
objects as the server holds them, a ServiceAccount's own kubeconfig, and access reviews.

Everything goes to the loopback control plane of ``tests/conftest.py``: helm and kubectl get its
kubeconfig explicitly (``--kubeconfig``), never a user's.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.chart.chartlib import CHART, run


def unique(prefix: str) -> str:
    """A name no other test (or earlier run against the same server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Release:
    """One helm release of the chart in the real API server."""

    helm: str
    env: dict[str, str]
    kubeconfig: Path
    name: str
    namespace: str

    def _helm(self, *args: str) -> Any:
        return run(
            [self.helm, *args, "--kubeconfig", str(self.kubeconfig), "--namespace", self.namespace],
            self.env,
        )

    def install(self, values_files: Sequence[Path] = (), sets: Sequence[str] = ()) -> None:
        cmd = ["install", self.name, str(CHART)]
        for f in values_files:
            cmd += ["-f", str(f)]
        for s in sets:
            cmd += ["--set", s]
        proc = self._helm(*cmd)
        assert proc.returncode == 0, f"helm install {self.name} failed:\n{proc.stdout}\n{proc.stderr}"

    def uninstall(self) -> None:
        proc = self._helm("uninstall", self.name, "--wait", "--timeout", "60s")
        assert proc.returncode == 0, f"helm uninstall {self.name} failed:\n{proc.stderr}"

    def manifest(self) -> list[dict[str, Any]]:
        """What helm says it created (hooks are not part of it: `helm test` would create those)."""
        proc = self._helm("get", "manifest", self.name)
        assert proc.returncode == 0, proc.stderr
        return [d for d in yaml.safe_load_all(proc.stdout) if d]

    def hooks(self) -> list[dict[str, Any]]:
        proc = self._helm("get", "hooks", self.name)
        assert proc.returncode == 0, proc.stderr
        return [d for d in yaml.safe_load_all(proc.stdout) if d]


def ref(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']}/{where}{meta['name']}"


def existing(kubectl: str, kubeconfig: Path, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The given objects as the API server holds them now (absent ones left out). kubectl maps kinds to
    resources through discovery, so any kind the chart renders works, custom ones included."""
    if not objects:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump_all(objects, f)
        f.flush()
        proc = run(
            [
                kubectl,
                "--kubeconfig",
                str(kubeconfig),
                "get",
                "-f",
                f.name,
                "--ignore-not-found",
                "-o",
                "json",
            ]
        )
    assert proc.returncode == 0, proc.stderr
    if not proc.stdout.strip():
        return []
    found = json.loads(proc.stdout)
    items: list[dict[str, Any]] = found["items"] if found.get("kind") == "List" else [found]
    return items


def service_account_kubeconfig(admin_kubeconfig: Path, token: str, path: Path) -> Path:
    """The admin kubeconfig's cluster (server, CA) with the ServiceAccount's token as the only user."""
    config = yaml.safe_load(admin_kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def can_i(
    authorization_api: Any,
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str | None = None,
    subresource: str | None = None,
) -> bool:
    """A SelfSubjectAccessReview: asked with the identity's own token, so the answer covers every group
    the API server puts it in (system:serviceaccounts, system:authenticated, ...)."""
    attributes: dict[str, Any] = {"verb": verb, "resource": resource, "group": group}
    if namespace is not None:
        attributes["namespace"] = namespace
    if subresource is not None:
        attributes["subresource"] = subresource
    review = authorization_api.create_self_subject_access_review({"spec": {"resourceAttributes": attributes}})
    return bool(review.status.allowed)
