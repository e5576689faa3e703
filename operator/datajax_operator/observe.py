"""Turns what the cluster reports about a model into :class:`Observations`.

Two sources: the workload's availability, as its controller (Deployment or LeaderWorkerSet) wrote it
in the workload's status, read through ``kube``; and the serving sidecars' figures, fetched here over
HTTP from the endpoints the Service's EndpointSlices list (port ``metrics``). Scrapes of one model run
concurrently, each with a timeout, in the event loop, so a slow or dead sidecar costs its own
timeout and holds up neither the model's other sidecars nor any other model. The exposition is read
with prometheus_client's reference parser: the sidecar's own strict parser belongs to the runtime
distribution, which the operator image does not ship, and a sidecar's few dozen lines need no speed.
"""

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from datajax_operator.status.observations import (
    GateObservation,
    Observations,
    SidecarFigures,
    SidecarScrape,
    WorkloadObservation,
)

SIDECAR_PORT_NAME: Final = "metrics"
MAX_EXPOSITION_BYTES: Final = 1 << 20
"""A sidecar's exposition is a few kB; an endpoint that sends more is not one, and is not read on
(an endless body would otherwise fill the operator's memory within the scrape timeout)."""


def workload_observation(obj: dict[str, Any]) -> WorkloadObservation:
    """Availability as reported by the workload's controller; a status that describes an older
    generation of the workload counts as nothing available yet, and is flagged as not reported."""
    spec = obj.get("spec", {})
    status = obj.get("status", {})
    desired = int(spec.get("replicas", 1))
    current = status.get("observedGeneration", obj["metadata"].get("generation")) == obj["metadata"].get(
        "generation"
    )
    counted = "availableReplicas" if obj["kind"] == "Deployment" else "readyReplicas"
    available = int(status.get(counted, 0)) if current else 0
    return WorkloadObservation(
        kind=obj["kind"], name=obj["metadata"]["name"], desired=desired, available=available, reported=current
    )


def unscheduled(pods: Sequence[dict[str, Any]]) -> str | None:
    """What the scheduler said about the pods it could not place (PodScheduled=False: reason and
    message, e.g. "0/19 nodes are available: 2 Insufficient google.com/tpu ..."), for the first such
    pod by name; None when there is none."""
    stuck: list[tuple[str, dict[str, Any]]] = []
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp") or pod.get("spec", {}).get("nodeName"):
            continue
        for condition in pod.get("status", {}).get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                stuck.append((pod["metadata"]["name"], condition))
    if not stuck:
        return None
    name, condition = min(stuck, key=lambda item: item[0])
    why = f"{condition.get('reason') or 'Unschedulable'}: {(condition.get('message') or '').strip()}"
    return f"{len(stuck)} pod(s) cannot be scheduled (pod {name}: {why.rstrip(': ')})"


def gather(
    workload: dict[str, Any] | None,
    missing_api: str | None,
    sidecars: Sequence[SidecarScrape] = (),
    not_owned: tuple[str, ...] = (),
    unscheduled: str | None = None,
    *,
    gate: GateObservation | None = None,
) -> Observations:
    """Observations from the workload as read back from the server after apply (None: it does not
    exist), the API the plan needs when the cluster does not serve it, this pass's scrapes, the
    children whose names are taken by objects the model does not control, and why pods wait for a
    node (:func:`unscheduled`), and the compile gate's Job (:func:`gate_observation`)."""
    if missing_api is not None:
        return Observations(
            workload=None, missing_api=missing_api, sidecars=tuple(sidecars), not_owned=not_owned, gate=gate
        )
    return Observations(
        workload=workload_observation(workload) if workload is not None else None,
        sidecars=tuple(sidecars),
        not_owned=not_owned,
        unscheduled=unscheduled,
        gate=gate,
    )


def gate_finished(job: dict[str, Any]) -> bool:
    """Whether the gate Job's controller counted a pod that ended (only then is a pod worth reading)."""
    status = job.get("status") or {}
    return bool(status.get("succeeded") or status.get("failed"))


def _job_failed(job: dict[str, Any]) -> str | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return str(condition.get("message") or condition.get("reason") or "the Job failed")
    return None


def gate_observation(job: dict[str, Any], pods: Sequence[dict[str, Any]], container: str) -> GateObservation:
    """The gate as its Job and pods report it: a pod's ``container`` terminated with a JSON verdict
    as its message (the newest such pod wins), or the gate's error or the log's tail when the Job
    failed; neither while it runs."""
    verdict: dict[str, Any] | None = None
    failure: str | None = None
    ended = []
    for pod in pods:
        for state in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (state.get("state") or {}).get("terminated")
            if state.get("name") == container and isinstance(terminated, dict):
                ended.append((str(terminated.get("finishedAt") or ""), terminated))
    for _, terminated in sorted(ended, key=lambda pair: pair[0]):
        message = str(terminated.get("message") or "").strip()
        try:
            document = json.loads(message)
        except json.JSONDecodeError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("fits"), bool):
            verdict = document
        elif isinstance(document, dict) and "error" in document:
            failure = f"the gate refused the request: {document['error']}"
        elif message:
            failure = f"exit code {terminated.get('exitCode')}: {message.splitlines()[-1][:500]}"
        else:
            failure = f"exit code {terminated.get('exitCode')}, reason {terminated.get('reason')}"
    name = str(job["metadata"]["name"])
    if verdict is not None:
        return GateObservation(name, verdict=verdict)
    failed = _job_failed(job)
    if failed is not None:
        return GateObservation(name, failure=failure or failed)
    return GateObservation(name)


def sidecar_endpoints(slices: Sequence[dict[str, Any]]) -> list[str]:
    """``host:port`` of every endpoint on the port named ``metrics`` in the EndpointSlices of the
    model's Service (one per serving pod, i.e. per slice), ready or not: a slice that is still warming
    up (loading weights, compiling) is billed all the same, so its sidecar's $/hour counts. Only
    terminating endpoints are left out: those pods are on their way out."""
    found: set[str] = set()
    for item in slices:
        ports = [
            p["port"] for p in item.get("ports") or [] if p.get("name") == SIDECAR_PORT_NAME and p.get("port")
        ]
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("terminating") is True:
                continue
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                found.update(f"{host}:{port}" for port in ports)
    return sorted(found)


Samples = dict[str, list[tuple[dict[str, str], float]]]


def _samples(text: str) -> Samples:
    """Every sample of the exposition by sample name (ValueError when the text is not an exposition)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def _one(samples: Samples, name: str, **labels: str) -> float:
    for sample_labels, value in samples.get(name, []):
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            return value
    raise ValueError(f"no {name}{labels or ''} in the exposition: not a datajax sidecar?")


def _optional(samples: Samples, name: str) -> float:
    """A figure an older sidecar may not export: NaN (unknown) when it is absent."""
    found = samples.get(name, [])
    return found[0][1] if found else math.nan


def _plausible(figures: SidecarFigures) -> SidecarFigures:
    """Refuse figures no sidecar exports (a negative or infinite rate, a ratio above 1): they would be
    aggregated into the model's figures as if true. NaN is the sidecar's "unknown" and passes."""
    checks = {
        "datajax_cost_usd_per_hour": (figures.usd_per_hour, math.inf),
        'datajax_tokens_per_second{kind="prompt"}': (figures.prompt_tokens_per_second, math.inf),
        'datajax_tokens_per_second{kind="generation"}': (figures.generation_tokens_per_second, math.inf),
        "datajax_prefix_cache_hit_ratio": (figures.prefix_cache_hit_ratio, 1.0),
        'datajax_latency_p95_seconds{kind="e2e"}': (figures.p95_e2e_latency_seconds, math.inf),
        'datajax_latency_p95_seconds{kind="ttft"}': (figures.p95_ttft_seconds, math.inf),
        "datajax_window_seconds": (figures.window_seconds, math.inf),
        "datajax_requests_per_second": (figures.requests_per_second, math.inf),
    }
    for name, (value, upper) in checks.items():
        if math.isnan(value):
            continue
        if math.isinf(value) or not 0.0 <= value <= upper:
            raise ValueError(f"{name} is {value}: not a figure a sidecar exports")
    return figures


def sidecar_figures(text: str) -> SidecarFigures:
    """A sidecar's ``/metrics`` text as figures (ValueError when it is not a sidecar's exposition, or
    its figures are impossible)."""
    exposition = _samples(text)
    registered = exposition.get("datajax_plan_registered", [])
    info = exposition.get("datajax_plan_info", [])
    devices = exposition.get("datajax_devices_match", [])
    cache_hit = exposition.get("datajax_xla_cache_hit", [])
    startup = exposition.get("datajax_startup_seconds", [])
    return _plausible(
        SidecarFigures(
            usd_per_hour=_one(exposition, "datajax_cost_usd_per_hour"),
            prompt_tokens_per_second=_one(exposition, "datajax_tokens_per_second", kind="prompt"),
            generation_tokens_per_second=_one(exposition, "datajax_tokens_per_second", kind="generation"),
            prefix_cache_hit_ratio=_one(exposition, "datajax_prefix_cache_hit_ratio"),
            p95_e2e_latency_seconds=_one(exposition, "datajax_latency_p95_seconds", kind="e2e"),
            p95_ttft_seconds=_one(exposition, "datajax_latency_p95_seconds", kind="ttft"),
            window_seconds=_one(exposition, "datajax_window_seconds"),
            upstream_up=_one(exposition, "datajax_upstream_up") == 1.0,
            requests_per_second=_optional(exposition, "datajax_requests_per_second"),
            plan_registered=registered[0][1] == 1.0 if registered else None,
            plan_reason=info[0][0].get("reason") if info else None,
            devices_match=devices[0][1] == 1.0 if devices else None,
            xla_cache_hit=cache_hit[0][1] == 1.0 if cache_hit else None,
            startup_seconds=startup[0][1] if startup and math.isfinite(startup[0][1]) else None,
        )
    )


async def _body(response: aiohttp.ClientResponse) -> bytes:
    """The body, read up to one byte past ``MAX_EXPOSITION_BYTES``."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_EXPOSITION_BYTES:
        chunk = await response.content.read(MAX_EXPOSITION_BYTES + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def _scrape(session: aiohttp.ClientSession, endpoint: str, dial: Mapping[str, str]) -> SidecarScrape:
    host, _, port = endpoint.rpartition(":")
    url = f"http://{dial.get(host, host)}:{port}/metrics"
    try:
        async with session.get(url) as response:
            if response.status != 200:
                return SidecarScrape(endpoint, None, f"HTTP {response.status}")
            if response.content_length is None and "chunked" not in response.headers.get(
                "Transfer-Encoding", ""
            ):
                # Without a length or chunks, a connection cut mid-body would read as a complete,
                # shorter exposition: a figure cut after its first digits would pass as true.
                return SidecarScrape(endpoint, None, "unframed response (no Content-Length, not chunked)")
            body = await _body(response)
            if len(body) > MAX_EXPOSITION_BYTES:
                return SidecarScrape(endpoint, None, f"more than {MAX_EXPOSITION_BYTES} bytes: not a sidecar")
        figures = sidecar_figures(body.decode("utf-8"))
    except TimeoutError:
        return SidecarScrape(endpoint, None, "timed out")
    except (aiohttp.ClientError, OSError) as err:
        return SidecarScrape(endpoint, None, f"unreachable: {err}")
    except ValueError as err:
        return SidecarScrape(endpoint, None, f"unreadable /metrics: {err}")
    if math.isnan(figures.usd_per_hour):
        return SidecarScrape(endpoint, None, "the sidecar exports no price")
    return SidecarScrape(endpoint, figures)


async def scrape_sidecars(
    session: aiohttp.ClientSession,
    endpoints: Sequence[str],
    timeout: float,
    dial: Mapping[str, str] | None = None,
) -> tuple[SidecarScrape, ...]:
    """Scrape every endpoint at once, each given at most ``timeout`` seconds.

    ``dial`` maps an endpoint address to the address actually connected to; empty in a cluster. It
    exists for an operator embedded in a test: the API server refuses loopback addresses in
    EndpointSlices, so a test lists stand-in addresses there and dials the loopback sidecars.
    """
    routes = dial or {}

    async def one(endpoint: str) -> SidecarScrape:
        try:
            async with asyncio.timeout(timeout):
                return await _scrape(session, endpoint, routes)
        except TimeoutError:
            return SidecarScrape(endpoint, None, f"no answer within {timeout:g} s")

    return tuple(await asyncio.gather(*(one(e) for e in endpoints)))
