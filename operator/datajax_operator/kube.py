"""The only module that talks to the Kubernetes API server.

Everything the operator does to the cluster goes through :class:`Kube`: server-side apply with one field
manager, get/list/delete by kind, the model's status, and Events. The rest of the operator works on
plain dicts and typed models, so it can be tested without a server and audited for API access in one
place (the Helm chart's RBAC rules mirror the calls made here).

Requests go through the ``kubernetes`` client's configured ``ApiClient`` (kubeconfig, in-cluster
service-account token and its refresh) but with raw JSON in and out: the operator's children include
a custom resource (LeaderWorkerSet), and typed models would only be converted back to dicts.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from kubernetes import client, config

from datajax_operator.api.constants import API_VERSION, KIND, PLURAL

FIELD_MANAGER: Final = "datajax-operator"
"""The one field manager of every write, so server-side apply knows which fields are ours."""

REPORTING_CONTROLLER: Final = "datajax.dev/operator"

SERVICE_ACCOUNT_NAMESPACE: Final = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
DISCOVERY_SECONDS: Final = 30.0
"""How long an answer to "does the server serve this kind?" is kept: a LeaderWorkerSet CRD installed
later is found within this, the retry delay of a model waiting for it."""
REQUEST_TIMEOUT: Final = (5.0, 30.0)
"""Connect and read timeouts (seconds) of every request. Without them a request to an API server that
accepted the connection and then went away (a restart, a lost etcd) blocks the reconcile thread, and
with it the model's lock, forever; with them the request fails and the next trigger retries."""


@dataclass(frozen=True)
class Kind:
    """A namespaced resource type the operator reads or writes, with its REST path."""

    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{prefix}/namespaces/{quote(namespace)}/{self.plural}"
        if name is not None:
            path += f"/{quote(name)}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


DATAJAX_MODEL: Final = Kind(API_VERSION, KIND, PLURAL)
DEPLOYMENT: Final = Kind("apps/v1", "Deployment", "deployments")
SERVICE: Final = Kind("v1", "Service", "services")
CONFIG_MAP: Final = Kind("v1", "ConfigMap", "configmaps")
ENDPOINT_SLICE: Final = Kind("discovery.k8s.io/v1", "EndpointSlice", "endpointslices")
LEADER_WORKER_SET: Final = Kind("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", "leaderworkersets")
EVENT: Final = Kind("v1", "Event", "events")
POD: Final = Kind("v1", "Pod", "pods")
JOB: Final = Kind("batch/v1", "Job", "jobs")
"""The compile gate's Job (spec.plan.compileGate): a child, but named after its request (render.gate),
so it is found by its labels rather than by ``child_names``."""
PEERING_API: Final = "/apis/kopf.dev/v1"

CHILD_KINDS: Final = (CONFIG_MAP, DEPLOYMENT, LEADER_WORKER_SET, SERVICE)
"""Every kind a model can own; children of these kinds the plan no longer wants are deleted."""


def kind_of(obj: dict[str, Any]) -> Kind:
    """The Kind of a manifest the operator renders (a manifest of any other kind is a bug)."""
    for kind in (*CHILD_KINDS, JOB, DATAJAX_MODEL):
        if kind.api_version == obj["apiVersion"] and kind.kind == obj["kind"]:
            return kind
    raise ValueError(f"the operator does not manage {obj['apiVersion']} {obj['kind']}")


_NOT_YAML_PRINTABLE = re.compile("[\u007f-\u009f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def apply_body(obj: dict[str, Any]) -> bytes:
    """An apply-patch body: JSON, which the server reads as YAML, written so that YAML reads it back
    exactly. The client library's ``json.dumps`` escapes a character beyond the BMP (an emoji in a
    user's string) as a UTF-16 surrogate pair, which is invalid in YAML: the server refuses the whole
    patch. Here every character is written as itself, except those YAML does not allow or would
    fold as line breaks, which get a (BMP) escape valid in both."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return _NOT_YAML_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode(
        "utf-8", "surrogatepass"
    )


def _is_typed_patch_error(data: Any) -> bool:
    """Server-side apply answers 500 "failed to create typed patch object" for content that does not
    fit the object's schema (e.g. an unknown field in an env valueFrom). It is the content that is
    wrong, not the server: it is reported as the 422 it would be for any other invalid object."""
    return isinstance(data, dict) and str(data.get("message", "")).startswith(
        "failed to create typed patch object"
    )


class KubeError(RuntimeError):
    """A request the API server refused; ``status`` is the HTTP status code."""

    def __init__(self, status: int, message: str, *, namespace_gone: bool = False) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.namespace_gone = namespace_gone
        """The namespace is being deleted or is gone: a 403 whose cause is ``NamespaceTerminating``
        (the NamespaceLifecycle admission plugin) or a 404 about the namespace itself."""


@dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to the API server, for a second client (kopf) to share."""

    server: str
    ca_path: str | None
    token: str | None
    certificate_path: str | None
    private_key_path: str | None
    insecure: bool


def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """The given kubeconfig; else in-cluster service-account credentials when running in a pod; else
    ``$KUBECONFIG`` (read at call time: the client library reads it once, at import)."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=configuration
        )
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    return configuration


def default_namespace(kubeconfig: str | None = None) -> str:
    """The namespace a command means when it names none, as kubectl decides it: the service account's
    namespace in a pod, else the current kubeconfig context's, else ``default``."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            return Path(SERVICE_ACCOUNT_NAMESPACE).read_text(encoding="utf-8").strip() or "default"
        except OSError:
            return "default"
    _, current = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
        config_file=kubeconfig or os.environ.get("KUBECONFIG")
    )
    namespace = (current or {}).get("context", {}).get("namespace")
    return str(namespace) if namespace else "default"


class Kube:
    """A thin JSON client over one authenticated ``ApiClient``; thread-safe like the client itself."""

    def __init__(self, api_client: client.ApiClient, discovery_seconds: float = DISCOVERY_SECONDS) -> None:
        self._api = api_client
        self._discovery_seconds = discovery_seconds
        self._served: dict[str, tuple[bool, float]] = {}

    @classmethod
    def connect(cls, kubeconfig: str | None = None, connections: int | None = None) -> Kube:
        """``connections``: the most concurrent requests that keep their connection (TLS) alive; at
        least the number of threads calling, else the pool drops and re-handshakes connections."""
        configuration = load_configuration(kubeconfig)
        if connections is not None:
            configuration.connection_pool_maxsize = connections
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def credentials(self) -> Credentials:
        """The credentials this client uses, refreshed first (in-cluster tokens rotate)."""
        cfg = self._api.configuration
        if cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)
        token = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
        if token and token.lower().startswith("bearer "):
            token = token[len("bearer ") :]
        return Credentials(
            server=cfg.host,
            ca_path=cfg.ssl_ca_cert,
            token=token,
            certificate_path=cfg.cert_file,
            private_key_path=cfg.key_file,
            insecure=not cfg.verify_ssl,
        )

    # -- raw requests --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, url, headers, body, _ = self._api.param_serialize(
            method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self._api.call_api(
            method, url, header_params=headers, body=body, _request_timeout=REQUEST_TIMEOUT
        )
        response.read()  # type: ignore[no-untyped-call]
        try:
            data = json.loads(response.data) if response.data else None
        except ValueError:  # e.g. the plain-text "404 page not found" of an API group not served
            data = bytes(response.data or b"").decode(errors="replace")
        return int(response.status), data

    def _expect(self, status: int, data: Any, *ok: int) -> Any:
        if status in ok:
            return data
        if not isinstance(data, dict):
            raise KubeError(status, str(data))
        details = data.get("details") or {}
        causes = {c.get("reason") for c in details.get("causes") or []}
        gone = (status == 403 and "NamespaceTerminating" in causes) or (
            status == 404 and details.get("kind") == "namespaces"
        )
        raise KubeError(status, data.get("message", ""), namespace_gone=gone)

    # -- objects -------------------------------------------------------------------------------

    def serves(self, kind: Kind) -> bool:
        """Whether the server serves this kind (a CRD such as LeaderWorkerSet may not be installed);
        the answer is kept ``discovery_seconds``, so a pass per model does not each ask again."""
        prefix = "/api/v1" if kind.api_version == "v1" else f"/apis/{kind.api_version}"
        cached = self._served.get(f"{prefix}/{kind.plural}")
        if cached is not None and time.monotonic() - cached[1] < self._discovery_seconds:
            return cached[0]
        status, data = self._request("GET", prefix)
        if status == 404:
            served = False
        else:
            data = self._expect(status, data, 200)
            served = any(r.get("name") == kind.plural for r in data.get("resources", []))
        self._served[f"{prefix}/{kind.plural}"] = (served, time.monotonic())
        return served

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        status, data = self._request("GET", kind.path(namespace, name))
        if status == 404:
            return None
        result: dict[str, Any] = self._expect(status, data, 200)
        return result

    def list_all(self, kind: Kind, namespace: str | None) -> list[dict[str, Any]]:
        """Every object of a kind in one namespace, or in every namespace when ``namespace`` is None."""
        if namespace is None:
            prefix = "/api/v1" if kind.api_version == "v1" else f"/apis/{kind.api_version}"
            status, data = self._request("GET", f"{prefix}/{kind.plural}")
        else:
            status, data = self._request("GET", kind.path(namespace))
        items: list[dict[str, Any]] = self._expect(status, data, 200)["items"]
        return items

    def events_about(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """The Events whose involvedObject is exactly this object (its uid), in core/v1 shape. Events
        written through events.k8s.io/v1 (``regarding``) are the same stored resource and come too."""
        meta = obj["metadata"]
        selector = f"involvedObject.name={meta['name']},involvedObject.uid={meta['uid']}"
        status, data = self._request(
            "GET", EVENT.path(meta["namespace"]), query=[("fieldSelector", selector)]
        )
        items: list[dict[str, Any]] = self._expect(status, data, 200)["items"]
        return items

    def endpoint_slices(self, namespace: str, service: str) -> list[dict[str, Any]]:
        """The EndpointSlices of a Service (how the endpoints controller labels them)."""
        return self.list(ENDPOINT_SLICE, namespace, f"kubernetes.io/service-name={service}")

    def list(self, kind: Kind, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        status, data = self._request("GET", kind.path(namespace), query=[("labelSelector", label_selector)])
        items: list[dict[str, Any]] = self._expect(status, data, 200)["items"]
        return items

    def peering(self, name: str, namespace: str | None) -> dict[str, Any] | None:
        """kopf's peering object: the ClusterKopfPeering ``name``, or the KopfPeering in ``namespace``."""
        path = (
            f"{PEERING_API}/clusterkopfpeerings/{quote(name)}"
            if namespace is None
            else f"{PEERING_API}/namespaces/{quote(namespace)}/kopfpeerings/{quote(name)}"
        )
        status, data = self._request("GET", path)
        if status == 404:
            return None
        result: dict[str, Any] = self._expect(status, data, 200)
        return result

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply as the operator's field manager, forcing conflicts: the operator is the
        authority on the fields it renders (a person's ``kubectl edit`` of them is reverted)."""
        meta = obj["metadata"]
        path = kind_of(obj).path(meta["namespace"], meta["name"])
        status, data = self._request(
            "PATCH",
            path,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            body=apply_body(obj),
            content_type="application/apply-patch+yaml",
        )
        if status == 500 and _is_typed_patch_error(data):
            raise KubeError(422, data["message"])
        result: dict[str, Any] = self._expect(status, data, 200, 201)
        return result

    def apply_status(self, kind: Kind, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply of the status subresource: fields we stop setting are removed."""
        body = {
            "apiVersion": kind.api_version,
            "kind": kind.kind,
            "metadata": {"name": name},
            "status": status,
        }
        code, data = self._request(
            "PATCH",
            kind.path(namespace, name, "status"),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            body=apply_body(body),
            content_type="application/apply-patch+yaml",
        )
        result: dict[str, Any] = self._expect(code, data, 200)
        return result

    def delete(self, kind: Kind, namespace: str, name: str, uid: str) -> bool:
        """Delete exactly the object we looked at (uid precondition), its dependents in the background.
        False when it is already gone or was replaced by another object of the same name."""
        body = {"preconditions": {"uid": uid}, "propagationPolicy": "Background"}
        status, data = self._request("DELETE", kind.path(namespace, name), body=body)
        if status in (404, 409):
            return False
        self._expect(status, data, 200, 202)
        return True

    def event(
        self,
        regarding: dict[str, Any],
        *,
        event_type: str,
        reason: str,
        message: str,
        now: datetime,
        name: str | None = None,
    ) -> bool:
        """A core/v1 Event on an object, so ``kubectl describe`` and ``kubectl events`` show it.

        With a ``name`` the Event is posted once: a second post of the same name is refused by the API
        server as a duplicate, and False is returned (True: posted now)."""
        meta = regarding["metadata"]
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        naming = {"name": name} if name is not None else {"generateName": f"{meta['name']}."}
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {**naming, "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": regarding["apiVersion"],
                "kind": regarding["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": REPORTING_CONTROLLER,
            "reportingInstance": os.environ.get("HOSTNAME", FIELD_MANAGER),
        }
        status, data = self._request("POST", EVENT.path(meta["namespace"]), body=body)
        if status == 409 and name is not None:
            return False
        self._expect(status, data, 201)
        return True
