"""Helpers of the chart tests: where the real binaries are, and chart rendering with `helm template`.

The binaries come from ``make tools`` (cached outside the repository). When they are missing the
tests FAIL with the command to run: a skipped chart test would let a broken chart through CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "datajax-operator"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
RULE_TESTS = Path(__file__).resolve().parent / "rules"
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the one tests run against.
KUBE_VERSIONS = ("1.29.0", "1.37.2")
RELEASE = "djx"
NAMESPACE = "datajax-system"


def tools_bin() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "datajax-operator" / "bin"


def binary(name: str) -> str:
    candidate = tools_bin() / name
    if candidate.exists() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(
        f"{name} not found in {tools_bin()} or on PATH: run `make tools` first "
        "(the chart tests need the real binary and are never skipped)",
        pytrace=False,
    )


def run(cmd: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, env=env, timeout=120, check=False)


class Renderer:
    """`helm template` of the chart with given values; returns the parsed documents."""

    def __init__(self, helm: str, env: dict[str, str]) -> None:
        self.helm = helm
        self.env = env

    def run(
        self,
        values_files: Sequence[Path] = (),
        sets: Sequence[str] = (),
        kube_version: str | None = None,
        extra: Sequence[str] = (),
    ) -> subprocess.CompletedProcess[str]:
        """``kube_version`` None renders as a user does, with helm's own default Kubernetes version
        (which its release build sets from its client-go: a helm built without it says v1.20.0 and
        refuses the chart's kubeVersion floor)."""
        cmd = [self.helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        if kube_version is not None:
            cmd += ["--kube-version", kube_version]
        cmd += list(extra)
        for f in values_files:
            cmd += ["-f", str(f)]
        for s in sets:
            cmd += ["--set", s]
        return run(cmd, self.env)

    def render(
        self, values_files: Sequence[Path] = (), sets: Sequence[str] = (), **kw: Any
    ) -> list[dict[str, Any]]:
        proc = self.run(values_files, sets, **kw)
        assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
        return [d for d in yaml.safe_load_all(proc.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
