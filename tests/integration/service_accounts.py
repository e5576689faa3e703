"""Operators that run with less than the chart grants: a ServiceAccount with chosen rules, its token in a
kubeconfig. A test takes one permission away to make the operator meet a refusal on demand (a 403 from
the real API server's RBAC), at a known step of its pass."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml
from cluster_state import ClusterState

from datajax_devtools.localcluster import LocalCluster

Rule = dict[str, list[str]]

OPERATOR_RULES: tuple[Rule, ...] = (
    {
        "apiGroups": ["datajax.dev"],
        "resources": ["datajaxmodels"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {"apiGroups": ["datajax.dev"], "resources": ["datajaxmodels/status"], "verbs": ["get", "patch"]},
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {
        "apiGroups": [""],
        "resources": ["services", "configmaps"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {
        "apiGroups": ["leaderworkerset.x-k8s.io"],
        "resources": ["leaderworkersets"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["get", "list", "watch", "create", "patch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
)
"""Every request the operator makes, cluster-wide (a superset of the chart's least-privilege rules)."""


def without(rules: tuple[Rule, ...], resource: str, verbs: tuple[str, ...] | None = None) -> list[Rule]:
    """``rules`` less ``verbs`` (all of them when None) on ``resource``."""
    kept = []
    for rule in rules:
        if resource not in rule["resources"]:
            kept.append(rule)
            continue
        others = [r for r in rule["resources"] if r != resource]
        if others:
            kept.append({**rule, "resources": others})
        left = [v for v in rule["verbs"] if verbs is not None and v not in verbs]
        if left:
            kept.append({**rule, "resources": [resource], "verbs": left})
    return kept


def _kubeconfig_for_token(cluster: LocalCluster, token: str, path: Path) -> Path:
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    path.write_text(yaml.safe_dump(config))
    return path


def service_account_kubeconfig(
    state: ClusterState, cluster: LocalCluster, directory: Path, prefix: str, rules: list[Rule]
) -> Path:
    """A kubeconfig of a new ServiceAccount bound cluster-wide to exactly ``rules``."""
    ns, name = "default", f"{prefix}-{uuid.uuid4().hex[:6]}"
    binding: dict[str, Any] = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
    }
    for path, body in (
        (f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": name}}),
        ("/apis/rbac.authorization.k8s.io/v1/clusterroles", {"metadata": {"name": name}, "rules": rules}),
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding),
    ):
        status, data = state.call("POST", path, body)
        assert status == 201, data
    status, data = state.call(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    assert status == 201, data
    return _kubeconfig_for_token(cluster, data["status"]["token"], directory / f"{name}.kubeconfig")
