"""What the kubelet and the endpoints controller would do for a model's serving pods, on loopback.

No kubelet runs here, so for each slice of a model the test runs, as a pod would:
- a vLLM-format metrics source (`vllm_source.VllmSource`, the pod's vLLM) on 127.0.0.1;
- the real `datajax-sidecar serve` process, with the arguments the operator rendered into the
  Deployment's sidecar container (the upstream pointed at that source, the settings path at a file),
  listening on its own loopback address 127.0.0.N, port 9400, as a pod listens on its own IP;
- the settings file kept equal to the `<model>-sidecar` ConfigMap's `settings.json`, as the kubelet
  keeps a mounted ConfigMap in sync;
and, as the endpoints controller would, one EndpointSlice for the model's Service listing the slices.

The API server refuses loopback addresses in an EndpointSlice ("may not be in the loopback range"),
so the slice lists 198.51.100.N (TEST-NET-2, never routed) and the in-process operator is given a
dial map 198.51.100.N -> 127.0.0.N (`runner.Options.sidecar_dial`): nothing leaves loopback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubehelpers import GROUP, PLURAL, VERSION
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families
from tests.polling import wait_for

__all__ = [  # wait_for is the tests' one poll loop (tests/polling.py), imported from here by the tier
    "DIAL", "OBSERVE_SECONDS", "SIDECAR_PORT", "WINDOW", "Kubelet", "Served", "Slice", "endpoint_slice",
    "loopback_address", "read_metrics", "wait_for",
]  # fmt: skip
from vllm_source import Traffic, VllmSource

from vllm_fixtures import scrape_text

SIDECAR_PORT = 9400
OBSERVE_SECONDS = 1.0
WINDOW = "6s"
DIAL = {f"198.51.100.{n}": f"127.0.0.{n}" for n in range(1, 255)}
"""EndpointSlice address -> loopback address dialled (198.51.100.1 -> 127.0.0.1 for odd listeners)."""
_taken: set[int] = set()


def loopback_address() -> int:
    """The next N whose 127.0.0.N:9400 is free (other test runs may hold some)."""
    for n in range(2, 255):
        if n in _taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((f"127.0.0.{n}", SIDECAR_PORT))
            except OSError:
                continue
        _taken.add(n)
        return n
    raise RuntimeError("no free 127.0.0.N:9400 left")


def read_metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class Slice:
    """One serving pod's vLLM stand-in and its real sidecar process."""

    def __init__(self, template: str, args: list[str], settings: Path, log: Path) -> None:
        self.number = loopback_address()
        self.traffic_since = time.monotonic()
        self.source = VllmSource(template).start()
        argv = list(args)
        argv[argv.index("--upstream") + 1] = self.source.url
        argv[argv.index("--settings") + 1] = str(settings)
        argv += ["--host", self.address]
        self._log = log.open("w")
        self._command = [sys.executable, "-m", "datajax_runtime.cli", *argv]
        self.process = subprocess.Popen(
            self._command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_for(self._listening, 30, f"sidecar on {self.address}:{SIDECAR_PORT}")

    @property
    def address(self) -> str:
        return f"127.0.0.{self.number}"

    @property
    def endpoint_address(self) -> str:
        """What the EndpointSlice lists for this pod (dialled as ``address``)."""
        return f"198.51.100.{self.number}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.address}:{SIDECAR_PORT}/metrics"

    def _listening(self) -> bool:
        assert self.process.poll() is None, "the sidecar exited"
        try:
            with socket.create_connection((self.address, SIDECAR_PORT), timeout=1):
                return True
        except OSError:
            return False

    def traffic(self, traffic: Traffic) -> None:
        self.source.set_traffic(traffic)
        self.traffic_since = time.monotonic()

    def figures(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return read_metrics(self.metrics_url)

    def restart(self, *extra: str) -> None:
        """Kill the sidecar and start it again, as a container restart: its window starts empty.
        ``extra`` arguments override the rendered ones (a later flag wins)."""
        self.kill()
        self.process = subprocess.Popen(
            [*self._command, *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_for(self._listening, 30, f"sidecar on {self.address}:{SIDECAR_PORT} again")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        self.kill()
        self.source.stop()
        self._log.close()
        _taken.discard(self.number)


class Kubelet(threading.Thread):
    """Keeps a file equal to one key of a ConfigMap, as the kubelet keeps a mounted ConfigMap."""

    def __init__(self, core: client.CoreV1Api, namespace: str, name: str, key: str, path: Path) -> None:
        super().__init__(name=f"kubelet {name}", daemon=True)
        self.core, self.namespace, self.name, self.key, self.path = core, namespace, name, key, path
        self.stopped = threading.Event()

    def sync(self) -> bool:
        try:
            data = self.core.read_namespaced_config_map(self.name, self.namespace).data or {}
        except client.ApiException as err:
            if err.status == 404:
                return False
            raise
        text = data.get(self.key)
        if text is None:
            return False
        if not self.path.exists() or self.path.read_text() != text:
            staged = self.path.with_suffix(".new")
            staged.write_text(text)
            staged.replace(self.path)  # atomic, as the kubelet's symlink swap
        return True

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.sync()


def endpoint_slice(namespace: str, service: str, addresses: list[str]) -> dict[str, Any]:
    """The EndpointSlice the endpoints controller would write for the Service's ready pods."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-e2e",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        "ports": [
            {"name": "http", "port": 8000, "protocol": "TCP"},
            {"name": "metrics", "port": SIDECAR_PORT, "protocol": "TCP"},
        ],
    }


class Served:
    """A DataJaxModel whose serving pods run on loopback: sources, sidecars, settings, EndpointSlice."""

    def __init__(
        self, api_client: Any, namespace: str, name: str, spec: dict[str, Any], workdir: Path
    ) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)
        self.namespace, self.name, self.workdir = namespace, name, workdir
        self.slices: list[Slice] = []
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DataJaxModel", "metadata": {"name": name}}
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {**body, "spec": spec})
        self.settings = workdir / f"{name}-settings.json"
        self.kubelet = Kubelet(self.core, namespace, f"{name}-sidecar", "settings.json", self.settings)
        wait_for(self.kubelet.sync, 30, f"ConfigMap {name}-sidecar")
        self.kubelet.start()
        deployment = wait_for(self.deployment, 30, f"Deployment {name}")
        containers = deployment["spec"]["template"]["spec"]["containers"]
        sidecar = next(c for c in containers if c["name"] == "datajax-sidecar")
        assert sidecar["command"] == ["datajax-sidecar"]
        self.sidecar_args: list[str] = sidecar["args"]

    def start_slices(self, count: int, others: list[str] | None = None) -> list[Slice]:
        """Start ``count`` slices and list them, and the ``others`` addresses, in the EndpointSlice."""
        template = scrape_text(3)
        for _ in range(count):
            index = len(self.slices)
            log = self.workdir / f"{self.name}-sidecar-{index}.log"
            self.slices.append(Slice(template, self.sidecar_args, self.settings, log))
        addresses = [s.endpoint_address for s in self.slices] + (others or [])
        self.discovery.create_namespaced_endpoint_slice(
            self.namespace, endpoint_slice(self.namespace, self.name, addresses)
        )
        return self.slices

    def model(self) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name
        )
        return result

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.model().get("status") or {}
        return status

    def condition(self, kind: str) -> dict[str, Any]:
        return next((c for c in self.status().get("conditions", []) if c["type"] == kind), {})

    def deployment(self) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.apps.api_client.sanitize_for_serialization(
                self.apps.read_namespaced_deployment(self.name, self.namespace)
            )
            return result
        except client.ApiException as err:
            if err.status == 404:
                return None
            raise

    def replicas(self) -> int:
        deployment = self.deployment()
        assert deployment is not None
        return int(deployment["spec"]["replicas"])

    def events(self) -> list[Any]:
        selector = f"involvedObject.name={self.name},involvedObject.kind=DataJaxModel"
        return list(self.core.list_namespaced_event(self.namespace, field_selector=selector).items)

    def patch_spec(self, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name, {"spec": spec}
        )

    def close(self) -> None:
        """Stop the pods' stand-ins and delete the model and its EndpointSlices, so no later operator
        (without the dial map) is left scraping stand-in addresses."""
        self.kubelet.stopped.set()
        for s in self.slices:
            s.stop()
        selector = f"kubernetes.io/service-name={self.name}"
        for item in self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector=selector
        ).items:
            self.discovery.delete_namespaced_endpoint_slice(item.metadata.name, self.namespace)
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
