"""Reading what the operator left in a namespace: models, children, Events, with resourceVersions.

Raw JSON through the admin ApiClient, so the hardening tests compare exactly what the server stores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubehelpers import GROUP, PLURAL, VERSION

CHILD_PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "LeaderWorkerSet": "/apis/leaderworkerset.x-k8s.io/v1/namespaces/{ns}/leaderworkersets",
    "Service": "/api/v1/namespaces/{ns}/services",
    # Only the operator's own (the sidecar settings); a namespace may hold users' ConfigMaps too.
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps"
    "?labelSelector=app.kubernetes.io%2Fmanaged-by%3Ddatajax-operator",
}
MODEL_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/{{ns}}/{PLURAL}"


@dataclass(frozen=True)
class Child:
    kind: str
    name: str
    uid: str
    resource_version: str
    owners: tuple[str, ...]
    """uids of the controller owner references."""


class ClusterState:
    """Raw reads and writes as cluster admin."""

    def __init__(self, api_client: Any) -> None:
        self.api = api_client

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """One request; returns (status, parsed JSON body or text) and never raises on HTTP errors."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, url, headers, body, _ = self.api.param_serialize(
            method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self.api.call_api(method, url, header_params=headers, body=body, _request_timeout=60)
        response.read()
        try:
            return int(response.status), json.loads(response.data) if response.data else None
        except ValueError:
            return int(response.status), bytes(response.data).decode(errors="replace")

    def get(self, path: str) -> Any:
        status, data = self.call("GET", path)
        return data if status == 200 else None

    def model(self, ns: str, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.get(f"{MODEL_PATH.format(ns=ns)}/{name}")
        return found

    def condition(self, ns: str, name: str, type_: str) -> dict[str, Any] | None:
        model = self.model(ns, name) or {}
        conditions = (model.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), None)

    def child(self, ns: str, kind: str, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.get(f"{CHILD_PATHS[kind].format(ns=ns)}/{name}")
        return found

    def children(self, ns: str) -> list[Child]:
        """Every Deployment, LeaderWorkerSet, Service and operator ConfigMap in the namespace, sorted."""
        found = []
        for kind, path in CHILD_PATHS.items():
            for item in (self.get(path.format(ns=ns)) or {"items": []})["items"]:
                meta = item["metadata"]
                found.append(
                    Child(
                        kind=kind,
                        name=meta["name"],
                        uid=meta["uid"],
                        resource_version=meta["resourceVersion"],
                        owners=tuple(
                            r["uid"] for r in meta.get("ownerReferences", []) if r.get("controller")
                        ),
                    )
                )
        return sorted(found, key=lambda c: (c.kind, c.name))

    def versions(self, ns: str) -> dict[tuple[str, str], str]:
        """resourceVersion of every model and child in the namespace."""
        found = {(c.kind, c.name): c.resource_version for c in self.children(ns)}
        for item in (self.get(MODEL_PATH.format(ns=ns)) or {"items": []})["items"]:
            found[("DataJaxModel", item["metadata"]["name"])] = item["metadata"]["resourceVersion"]
        return found

    def events(self, ns: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (self.get(f"/api/v1/namespaces/{ns}/events") or {"items": []})["items"]
        return items

    def create_model(self, ns: str, doc: dict[str, Any]) -> dict[str, Any]:
        status, data = self.call("POST", MODEL_PATH.format(ns=ns), doc)
        assert status == 201, data
        result: dict[str, Any] = data
        return result

    def patch_model_spec(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        status, data = self.call(
            "PATCH",
            f"{MODEL_PATH.format(ns=ns)}/{name}",
            {"spec": spec},
            content_type="application/merge-patch+json",
        )
        assert status == 200, data


def model_doc(name: str, ns: str, topology: str = "2x4", **spec: Any) -> dict[str, Any]:
    """A small valid model on v6e (2x4: one host, a Deployment; 4x4: four hosts, a LeaderWorkerSet)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataJaxModel",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"model": {"name": "org/m"}, "tpu": {"generation": "v6e", "topology": topology}, **spec},
    }


def converged(state: ClusterState, ns: str, name: str, workload: str) -> bool:
    """The model's status describes its current generation with ``workload``, and exactly that
    workload and one Service exist, both controlled by the model."""
    model = state.model(ns, name)
    if model is None:
        return False
    status = model.get("status") or {}
    if status.get("observedGeneration") != model["metadata"]["generation"]:
        return False
    if (status.get("placement") or {}).get("workload") != workload:
        return False
    uid = model["metadata"]["uid"]
    children = [(c.kind, c.owners) for c in state.children(ns) if c.name == name]
    return sorted(children) == sorted([(workload, (uid,)), ("Service", (uid,))])
