"""What a node's containers would be for a model's serving pods, on loopback.

The pods are real: the Deployment controller makes them, kube-scheduler binds them to a node of the
v6e pool, kwok (playing kubelet) gives them an IP, Running and Ready, and the EndpointSlice
controller lists them. No container runs, so for the pod the test asks to serve, as its containers
would, the harness runs:
- a vLLM-format metrics source (`vllm_source.VllmSource`, the pod's vLLM) on 127.0.0.1;
- the real `datajax-sidecar serve` process, with the arguments the operator rendered into the pod's
  sidecar container (the upstream pointed at that source, the settings path at a file), listening on
  the loopback address the control plane maps the pod's IP to (`LocalCluster.dial_map`, given to
  the operator as `runner.Options.sidecar_dial`), port 9400, as a pod listens on its own IP;
- the settings file kept equal to the `<model>-sidecar` ConfigMap's `settings.json`, as the kubelet
  keeps a mounted ConfigMap in sync.

A :class:`Slice` is a serving slot whose traffic the test sets: when its pod goes (a ScaleDown, a
suspension) its sidecar stops; when the ReplicaSet makes a new pod, the slot's sidecar starts again
on the new pod's address, with the same vLLM source. Pods the test did not ask to serve get nothing:
their scrapes are refused, as a pod's whose sidecar is down.

A test may still list an address of its own in an EndpointSlice (a fault server, a black hole):
``INJECTED`` maps 198.51.100.N (TEST-NET-2, never routed) to 127.0.0.N for those.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubehelpers import GROUP, PLURAL, VERSION, RunningOperator
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families
from tests.polling import wait_for
from vllm_source import Traffic, VllmSource

from datajax_devtools.localcluster import LocalCluster
from datajax_operator.render.names import selector_labels
from vllm_fixtures import scrape_text

__all__ = [  # wait_for is the tests' one poll loop (tests/polling.py), imported from here by the tier
    "INJECTED", "OBSERVE_SECONDS", "SIDECAR_PORT", "WINDOW", "WINDOW_SECONDS", "Kubelet", "Served", "Slice",
    "dial", "loopback_address", "passes_over", "read_metrics", "wait_for",
]  # fmt: skip

SIDECAR_PORT = 9400
OBSERVE_SECONDS = 1.0
WINDOW_SECONDS = 6.0
WINDOW = f"{WINDOW_SECONDS:g}s"
INJECTED = {f"198.51.100.{n}": f"127.0.0.{n}" for n in range(1, 255)}
"""Test-made EndpointSlice address -> loopback address dialled (198.51.100.1 -> 127.0.0.1)."""
_taken: set[int] = set()


def dial(cluster: LocalCluster) -> dict[str, str]:
    """The operator's dial map in this tier: pod IPs as the control plane maps them, and the
    addresses a test injects."""
    return {**INJECTED, **cluster.dial_map()}


def loopback_address() -> int:
    """The next N whose 127.0.0.N:9400 is free (other test runs may hold some), for an injected
    endpoint 198.51.100.N."""
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


def passes_over(
    operator: RunningOperator, model: Served, seconds: float, timeout: float | None = None
) -> None:
    """Return once ``seconds`` have gone by and the operator has completed at least that many seconds'
    worth of the model's passes (plus two) in them: what the operator would do in that time, it has
    had every pass to do (how a test shows that something did NOT happen)."""
    start, since = operator.passes(model.namespace, model.name), time.monotonic()
    wanted = start + seconds / OBSERVE_SECONDS + 2
    wait_for(
        lambda: (
            time.monotonic() - since >= seconds and operator.passes(model.namespace, model.name) >= wanted
        ),
        3 * seconds if timeout is None else timeout,
        f"{seconds:g} s of the model's passes",
    )


def read_metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class Slice:
    """One serving slot: the vLLM stand-in the test drives, and the real sidecar process of the pod
    that currently fills the slot (none between a pod's deletion and its replacement)."""

    def __init__(self, template: str, args: list[str], settings: Path, log: Path) -> None:
        self.traffic_since = time.monotonic()
        self.source = VllmSource(template).start()
        argv = list(args)
        argv[argv.index("--upstream") + 1] = self.source.url
        argv[argv.index("--settings") + 1] = str(settings)
        self._argv = argv
        self._log = log.open("w")
        self.pod = ""
        self.endpoint_address = ""
        """The pod's IP, as the EndpointSlice lists it."""
        self.address = ""
        """The loopback address the sidecar listens on (the pod IP's, see ``dial``)."""
        self.process: subprocess.Popen[bytes] | None = None

    def attach(self, pod: str, pod_ip: str, cluster: LocalCluster) -> None:
        """Run the sidecar for this pod, at its address."""
        self.pod, self.endpoint_address = pod, pod_ip
        self.address = cluster.loopback_for(pod_ip)
        self._start()

    def detach(self) -> None:
        """The pod is gone: so is its sidecar (the vLLM source, the slot's, stays)."""
        self.kill()
        self.pod = ""

    def _start(self, *extra: str) -> None:
        self._command = [sys.executable, "-m", "datajax_runtime.cli", *self._argv, "--host", self.address]
        self.process = subprocess.Popen(
            [*self._command, *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_for(self._listening, 30, f"sidecar on {self.address}:{SIDECAR_PORT}")

    @property
    def metrics_url(self) -> str:
        return f"http://{self.address}:{SIDECAR_PORT}/metrics"

    def _listening(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "the sidecar exited"
        return self._accepts()

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.address, SIDECAR_PORT), timeout=1):
                return True
        except OSError:
            return False

    def traffic(self, traffic: Traffic) -> None:
        self.source.set_traffic(traffic)
        self.traffic_since = time.monotonic()

    def figures(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The sidecar's /metrics; between a pod's deletion and its replacement, once the next pod's
        sidecar listens (the ReplicaSet controller, the scheduler and kwok first bring the pod up)."""
        wait_for(self._serving, 60, "a pod in this slot with its sidecar listening")
        return read_metrics(self.metrics_url)

    def _serving(self) -> bool:
        process = self.process
        if not self.pod or process is None or process.poll() is not None:
            return False
        return self._accepts()

    def restart(self, *extra: str) -> None:
        """Kill the sidecar and start it again, as a container restart: its window starts empty.
        ``extra`` arguments override the rendered ones (a later flag wins)."""
        self.kill()
        self._start(*extra)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        self.kill()
        self.source.stop()
        self._log.close()


class Kubelet(threading.Thread):
    """Keeps a file equal to one key of a ConfigMap, as the kubelet keeps a mounted ConfigMap, and
    the served pods' sidecars in step with the pods."""

    def __init__(self, core: client.CoreV1Api, namespace: str, name: str, key: str, path: Path) -> None:
        super().__init__(name=f"kubelet {name}", daemon=True)
        self.core, self.namespace, self.name, self.key, self.path = core, namespace, name, key, path
        self.stopped = threading.Event()
        self.pods: Callable[[], None] = lambda: None
        """Called every pass too: the served model's pod sync."""

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
            self.pods()


class Served:
    """A DataJaxModel whose serving pods' containers run on loopback: sources, sidecars, settings."""

    def __init__(  # noqa: PLR0917 (the fixture's one call site)
        self,
        api_client: Any,
        cluster: LocalCluster,
        namespace: str,
        name: str,
        spec: dict[str, Any],
        workdir: Path,
    ) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)
        self.cluster = cluster
        self.namespace, self.name, self.workdir = namespace, name, workdir
        self.slices: list[Slice] = []
        self.unserved: dict[str, str] = {}
        """Running pods the test left without a sidecar (name -> IP), see :meth:`start_slices`."""
        self._lock = threading.Lock()
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DataJaxModel", "metadata": {"name": name}}
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {**body, "spec": spec})
        self.settings = workdir / f"{name}-settings.json"
        self.kubelet = Kubelet(self.core, namespace, f"{name}-sidecar", "settings.json", self.settings)
        wait_for(self.kubelet.sync, 30, f"ConfigMap {name}-sidecar")
        self.kubelet.pods = self.sync_pods
        self.kubelet.start()
        deployment = wait_for(self.deployment, 30, f"Deployment {name}")
        containers = deployment["spec"]["template"]["spec"]["containers"]
        sidecar = next(c for c in containers if c["name"] == "datajax-sidecar")
        assert sidecar["command"] == ["datajax-sidecar"]
        self.sidecar_args: list[str] = sidecar["args"]

    def running_pods(self) -> dict[str, str]:
        """Name -> IP of the model's pods that kwok runs (Running, an IP, not being deleted)."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(selector_labels(self.name).items()))
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        return {
            p.metadata.name: p.status.pod_ip
            for p in pods
            if p.status.phase == "Running" and p.status.pod_ip and p.metadata.deletion_timestamp is None
        }

    def sync_pods(self) -> None:
        """A slot whose pod is gone loses its sidecar; a new pod fills a slot left empty."""
        with self._lock:
            if not self.slices:
                return
            running = self.running_pods()
            for s in self.slices:
                if s.pod and s.pod not in running:
                    s.detach()
            served = {s.pod for s in self.slices}
            empty = [s for s in self.slices if not s.pod]
            for pod, ip in sorted(running.items()):
                if pod not in served and empty and pod not in self.unserved:
                    empty.pop(0).attach(pod, ip, self.cluster)

    def start_slices(self, count: int, pods: int | None = None) -> list[Slice]:
        """Serve ``count`` of the model's running pods, once ``pods`` (default ``count``) run; returns
        the slots. Running pods beyond ``count`` stay unserved (:attr:`unserved`: name -> IP)."""
        want = count if pods is None else pods

        def enough() -> dict[str, str] | None:
            running = self.running_pods()
            return running if len(running) >= want else None

        running: dict[str, str] = wait_for(enough, 60, f"{want} running pods of {self.name}")
        template = scrape_text(3)
        with self._lock:
            for pod, ip in sorted(running.items())[:count]:
                log = self.workdir / f"{self.name}-sidecar-{len(self.slices)}.log"
                slot = Slice(template, self.sidecar_args, self.settings, log)
                slot.attach(pod, ip, self.cluster)
                self.slices.append(slot)
            self.unserved = dict(sorted(running.items())[count:])
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
        """Stop the pods' processes and delete the model (the garbage collector removes its
        Deployment, pods and the EndpointSlice controller's slices), and any slice a test listed."""
        self.kubelet.stopped.set()
        self.kubelet.join(5)
        with self._lock:
            for s in self.slices:
                s.stop()
        selector = f"kubernetes.io/service-name={self.name}"
        for item in self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector=selector
        ).items:
            labels = item.metadata.labels or {}
            if labels.get("endpointslice.kubernetes.io/managed-by") != "endpointslice-controller.k8s.io":
                self.discovery.delete_namespaced_endpoint_slice(item.metadata.name, self.namespace)
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
