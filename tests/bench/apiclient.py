"""The benchmark's own API client: asyncio + aiohttp, raw JSON, one connection pool.

Why not the operator's ``Kube``: the load generator and the "raw limit" must cost as little client CPU
as possible on a 2-core machine, so what is measured is the API server and the operator, not a
thread-per-request client. Watches of children ask for metadata only (``PartialObjectMetadata``), so
following 2000 Deployments costs the observer a few KB per event instead of whole pod templates.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
READ_VERBS = frozenset({"GET", "LIST"})
_REQUEST_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Endpoint:
    """Where the API server is and how to authenticate (a LocalCluster provides all three)."""

    server: str
    token: str
    ca_cert: Path


@dataclass(frozen=True)
class Resource:
    """A namespaced collection: ``prefix`` is ``/api/v1`` or ``/apis/<group>/<version>``."""

    prefix: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        path = f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


MODELS = Resource("/apis/datajax.dev/v1alpha1", "datajaxmodels")
DEPLOYMENTS = Resource("/apis/apps/v1", "deployments")
LEADER_WORKER_SETS = Resource("/apis/leaderworkerset.x-k8s.io/v1", "leaderworkersets")
SERVICES = Resource("/api/v1", "services")
CONFIG_MAPS = Resource("/api/v1", "configmaps")
EVENTS = Resource("/api/v1", "events")
NAMESPACES_PATH = "/api/v1/namespaces"


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class Api:
    """An admin session on the API server; use as an async context manager."""

    def __init__(self, endpoint: Endpoint, connections: int = 64) -> None:
        self.endpoint = endpoint
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        context = ssl.create_default_context(cafile=str(self.endpoint.ca_cert))
        self._session = aiohttp.ClientSession(
            base_url=self.endpoint.server,
            headers={"Authorization": f"Bearer {self.endpoint.token}"},
            connector=aiohttp.TCPConnector(ssl=context, limit=self._connections),
            read_bufsize=2**20,
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use Api as an async context manager"
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> Any:
        data = None if body is None else json.dumps(body)
        async with self.session.request(
            method, path, data=data, params=params, headers={"Content-Type": content_type}
        ) as response:
            text = await response.text()
            if response.status not in ok:
                raise ApiError(response.status, text)
            return json.loads(text) if text else None

    async def create(self, resource: Resource, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", resource.path(namespace), obj)
        return result

    async def apply(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """Server-side apply under the operator's field manager (the same request the operator makes)."""
        result: dict[str, Any] = await self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            obj,
            content_type="application/apply-patch+yaml",
            params={"fieldManager": "datajax-operator", "force": "true"},
        )
        return result

    async def create_namespace(self, name: str) -> None:
        await self.request("POST", NAMESPACES_PATH, {"metadata": {"name": name}})

    async def list_version(self, resource: Resource, namespace: str) -> str:
        listing = await self.request("GET", resource.path(namespace), params={"limit": "1"})
        version: str = listing["metadata"]["resourceVersion"]
        return version

    async def watch(
        self, resource: Resource, namespace: str, since: str, *, metadata_only: bool
    ) -> AsyncIterator[tuple[float, str, dict[str, Any]]]:
        """(arrival time, type, object) of every change after resourceVersion ``since``, until cancelled."""
        params = {
            "watch": "1",
            "resourceVersion": since,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "3600",
        }
        headers = {"Accept": METADATA_ONLY} if metadata_only else {}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(
            resource.path(namespace), params=params, headers=headers, timeout=timeout
        ) as response:
            if response.status != 200:
                raise ApiError(response.status, await response.text())
            async for line in response.content:
                arrived = time.monotonic()
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise ApiError(int(event["object"].get("code", 0)), str(event["object"]))
                if event["type"] != "BOOKMARK":
                    yield arrived, event["type"], event["object"]

    async def requests_served(self, resources: frozenset[str], verbs: frozenset[str]) -> dict[str, float]:
        """Requests the API server has served so far, per "VERB resource[/subresource]", from its own
        ``apiserver_request_total`` (which counts a no-op server-side apply that changes nothing)."""
        async with self.session.get("/metrics") as response:
            text = await response.text()
        totals: dict[str, float] = {}
        for line in text.splitlines():
            match = _REQUEST_LINE.match(line)
            if match is None:
                continue
            labels = dict(_LABEL.findall(match["labels"]))
            if labels.get("verb") in verbs and labels.get("resource") in resources:
                key = f"{labels['verb']} {labels['resource']}"
                if labels.get("subresource"):
                    key += f"/{labels['subresource']}"
                totals[key] = totals.get(key, 0.0) + float(match["value"])
        return totals


async def bounded(concurrency: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    """Run the jobs with at most ``concurrency`` in flight; the first failure propagates."""
    queue: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            await queue.get_nowait()()

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(jobs))):
            group.create_task(worker())
