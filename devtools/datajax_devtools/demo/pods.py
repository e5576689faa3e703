"""What the kubelet, the Deployment controller and the EndpointSlice controller would do, on loopback.

No kubelet runs on this machine, so no pod ever starts. This module stands in for the three
controllers a cluster would run, for one Deployment the operator owns:

- **pods**: one "pod" per desired replica of the Deployment's current template. A pod is a simulated
  vLLM server (its `/metrics` driven by the traffic model) and the **real** `datajax-sidecar` process,
  started with the exact command and arguments of the pod template's `datajax-sidecar` container. The
  paths the container would see through its volume mounts are mapped to a directory per pod, and a
  ConfigMap volume is written there from the ConfigMap's data and refreshed, as the kubelet does.
- **Deployment status**: replicas, ready and available replicas and the Available condition, written
  to the status subresource as the Deployment controller would (the operator reads them back).
- **EndpointSlice**: one slice for the Service, listing the ready pods with ports `http` and `metrics`.

Addresses: every pod has a loopback address 127.0.0.N to bind to, but the API server refuses loopback
addresses in an EndpointSlice, so the slice lists a stand-in "pod IP" from the documentation range
192.0.2.0/24 and the operator is started with the map from one to the other (:data:`POD_SLOTS`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from datajax_devtools.demo.vllm_server import SimulatedVllmFleet
from datajax_devtools.localcluster import LocalCluster, die_with_parent

log = logging.getLogger(__name__)

POD_SLOTS = 8
"""How many pods can exist at once (a demo model has a few replicas)."""
SIDECAR = "datajax-sidecar"
SIMULATOR = "simulated-by-datajax-demo"


def pod_ip(slot: int) -> str:
    """The address listed in the EndpointSlice (documentation range: never routed anywhere)."""
    return f"192.0.2.{11 + slot}"


def loopback_ip(slot: int) -> str:
    """The address the pod's processes bind to."""
    return f"127.0.0.{11 + slot}"


def dial_map() -> dict[str, str]:
    """EndpointSlice address -> loopback address, for the operator."""
    return {pod_ip(slot): loopback_ip(slot) for slot in range(POD_SLOTS)}


def _bindable(port: int) -> bool:
    for slot in range(POD_SLOTS):
        with socket.socket() as probe:
            try:
                probe.bind((loopback_ip(slot), port))
            except OSError:
                return False
    return True


def pick_port(preferred: int) -> int:
    """The container's own port when every pod address can bind it, else one free on all of them."""
    if _bindable(preferred):
        return preferred
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if _bindable(port):
            return port
    raise RuntimeError("no port free on every pod address")


@dataclass
class Pod:
    """One simulated serving pod: its addresses, its sidecar process and its mounted files."""

    name: str
    slot: int
    template_hash: str
    directory: Path
    sidecar: subprocess.Popen[bytes]
    log_file: IO[bytes]
    config_maps: dict[Path, str] = field(default_factory=dict)
    """Directory of a ConfigMap volume -> the ConfigMap's name."""

    @property
    def ip(self) -> str:
        return pod_ip(self.slot)


class SimulatedControllers:
    """Keeps one Deployment's pods, status and EndpointSlice in line with its spec (call :meth:`sync`)."""

    def __init__(
        self,
        cluster: LocalCluster,
        fleet: SimulatedVllmFleet,
        namespace: str,
        deployment: str,
        workdir: Path,
        *,
        seed: int = 8,
    ) -> None:
        self.cluster = cluster
        self.fleet = fleet
        self.namespace = namespace
        self.deployment = deployment
        self.workdir = workdir
        self.pods: list[Pod] = []
        self.http_port = pick_port(8000)
        self.metrics_port = pick_port(9400)
        self._random = random.Random(seed)
        self._written_status: dict[str, Any] | None = None
        self._written_endpoints: list[dict[str, Any]] | None = None
        self.slice_name = f"{deployment}-{self._suffix()}"

    def _suffix(self) -> str:
        return "".join(self._random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))

    # -- API ------------------------------------------------------------------------------------

    def _get(self, path: str) -> dict[str, Any] | None:
        status, body = self.cluster.request("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status} {body[-300:]!r}")
        result: dict[str, Any] = json.loads(body)
        return result

    def _write(self, method: str, path: str, obj: dict[str, Any]) -> None:
        status, body = self.cluster.request(method, path, obj)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status} {body[-300:]!r}")

    # -- the loop body --------------------------------------------------------------------------

    def sync(self) -> None:
        """One pass of all three controllers."""
        ns = self.namespace
        deployment = self._get(f"/apis/apps/v1/namespaces/{ns}/deployments/{self.deployment}")
        if deployment is None:
            self._scale_to(0, "", {})
            return
        template = deployment["spec"]["template"]
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        desired = int(deployment["spec"].get("replicas", 1))
        # a new template replaces every pod (maxSurge 0, as rendered); extra pods go newest first
        current = [p for p in self.pods if p.template_hash == template_hash]
        leaving = [p for p in self.pods if p not in current] + current[desired:]
        if leaving:  # out of the EndpointSlice before the processes stop, as for a terminating pod
            self._write_endpoints([p for p in self.pods if p not in leaving and self._ready(p)])
            for pod in leaving:
                self._stop(pod)
        self._scale_to(desired, template_hash, template)
        for pod in self.pods:
            self._refresh_config_maps(pod)
        ready = [p for p in self.pods if self._ready(p)]
        self._write_status(deployment, len(self.pods), len(ready))
        self._write_endpoints(ready)

    def _scale_to(self, desired: int, template_hash: str, template: dict[str, Any]) -> None:
        while len(self.pods) > desired:
            self._stop(self.pods[-1])
        while len(self.pods) < desired:
            used = {p.slot for p in self.pods}
            slot = min(s for s in range(POD_SLOTS) if s not in used)
            self.pods.append(self._start(slot, template_hash, template))

    def _start(self, slot: int, template_hash: str, template: dict[str, Any]) -> Pod:
        name = f"{self.deployment}-{template_hash}-{self._suffix()}"
        directory = self.workdir / "pods" / name
        directory.mkdir(parents=True, exist_ok=True)
        spec = template["spec"]
        container = next(c for c in spec["containers"] if c["name"] == SIDECAR)
        served = next(
            (
                a.split("=", 1)[1]
                for c in spec["containers"]
                for a in c.get("args", [])
                if a.startswith("--served-model-name=")
            ),
            self.deployment,
        )
        max_len = next(
            (
                int(a.split("=", 1)[1])
                for c in spec["containers"]
                for a in c.get("args", [])
                if a.startswith("--max-model-len=")
            ),
            None,
        )
        if max_len is not None and max_len != self.fleet.traffic.slice.max_model_len:
            assumed = self.fleet.traffic.slice.max_model_len
            raise RuntimeError(f"the traffic model assumes --max-model-len {assumed}, the pod says {max_len}")
        self.fleet.start(name, served, loopback_ip(slot), self.http_port)

        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts: dict[str, Path] = {}
        config_maps: dict[Path, str] = {}
        for mount in container.get("volumeMounts", []):
            local = directory / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"].rstrip("/")] = local
            config_map = volumes.get(mount["name"], {}).get("configMap")
            if config_map is not None:
                config_maps[local] = config_map["name"]
        argv = [self._command(container["command"][0]), *container["command"][1:]]
        argv += self._pod_args(container.get("args", []), slot, mounts)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
        log_file = (directory / "sidecar.log").open("wb")
        self._write_config_maps(config_maps)
        sidecar = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops its pods in order
            preexec_fn=die_with_parent,  # noqa: PLW1509 (only prctl)
        )
        log.info("pod %s: sidecar pid %d on %s:%d", name, sidecar.pid, loopback_ip(slot), self.metrics_port)
        return Pod(name, slot, template_hash, directory, sidecar, log_file, config_maps)

    @staticmethod
    def _command(program: str) -> str:
        """The container's program from this environment (the venv's console script)."""
        beside = Path(sys.executable).parent / program
        found = str(beside) if beside.exists() else shutil.which(program)
        if found is None:
            raise RuntimeError(f"{program} not found (run `make install`)")
        return found

    def _pod_args(self, args: list[str], slot: int, mounts: dict[str, Path]) -> list[str]:
        """The container's arguments with the pod's addresses and the mounted paths made local."""
        out: list[str] = []
        values = iter(args)
        for arg in values:
            if arg == "--upstream":
                next(values)
                out += [arg, f"http://{loopback_ip(slot)}:{self.http_port}/metrics"]
            elif arg == "--port":
                next(values)
                out += [arg, str(self.metrics_port), "--host", loopback_ip(slot)]
            else:
                out.append(self._local_path(arg, mounts))
        return out

    @staticmethod
    def _local_path(arg: str, mounts: dict[str, Path]) -> str:
        for mount_path, local in mounts.items():
            if arg == mount_path or arg.startswith(mount_path + "/"):
                return str(local) + arg[len(mount_path) :]
        return arg

    def _refresh_config_maps(self, pod: Pod) -> None:
        self._write_config_maps(pod.config_maps)

    def _write_config_maps(self, config_maps: dict[Path, str]) -> None:
        """Write each mounted ConfigMap's keys as files, as the kubelet's volume refresh does."""
        for local, name in config_maps.items():
            config_map = self._get(f"/api/v1/namespaces/{self.namespace}/configmaps/{name}")
            for key, value in ((config_map or {}).get("data") or {}).items():
                path = local / key
                if not path.exists() or path.read_text(encoding="utf-8") != value:
                    tmp = path.with_name(f".{key}.tmp")
                    tmp.write_text(value, encoding="utf-8")
                    tmp.replace(path)

    def _ready(self, pod: Pod) -> bool:
        """Ready once the sidecar listens (its own probe is a TCP check); not ready once it exited."""
        if pod.sidecar.poll() is not None:
            return False
        with socket.socket() as probe:
            probe.settimeout(0.2)
            return probe.connect_ex((loopback_ip(pod.slot), self.metrics_port)) == 0

    def _stop(self, pod: Pod) -> None:
        self.pods.remove(pod)
        self.fleet.stop(pod.name)
        if pod.sidecar.poll() is None:
            pod.sidecar.terminate()
            try:
                pod.sidecar.wait(10)
            except subprocess.TimeoutExpired:
                pod.sidecar.kill()
                pod.sidecar.wait()
        pod.log_file.close()
        log.info("pod %s stopped", pod.name)

    def _write_status(self, deployment: dict[str, Any], replicas: int, ready: int) -> None:
        desired = int(deployment["spec"].get("replicas", 1))
        available = ready >= desired
        status = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(desired - ready, 0),
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                    "message": f"{ready} of {desired} replicas available (simulated)",
                }
            ],
        }
        if status == self._written_status:
            return
        body = {**deployment, "status": status}
        path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.deployment}/status"
        status_code, reply = self.cluster.request("PUT", path, body)
        if status_code == 409:  # the operator changed the spec meanwhile: the next pass retries
            return
        if status_code >= 300:
            raise RuntimeError(f"PUT {path}: HTTP {status_code} {reply[-300:]!r}")
        self._written_status = status

    def _write_endpoints(self, ready: list[Pod]) -> None:
        endpoints = [
            {
                "addresses": [pod.ip],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "targetRef": {"kind": "Pod", "namespace": self.namespace, "name": pod.name},
            }
            for pod in sorted(ready, key=lambda p: p.slot)
        ]
        if endpoints == self._written_endpoints:
            return
        path = f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices"
        obj: dict[str, Any] = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": self.slice_name,
                "namespace": self.namespace,
                "labels": {
                    "kubernetes.io/service-name": self.deployment,
                    "endpointslice.kubernetes.io/managed-by": SIMULATOR,
                },
            },
            "addressType": "IPv4",
            "ports": [
                {"name": "http", "port": self.http_port, "protocol": "TCP"},
                {"name": "metrics", "port": self.metrics_port, "protocol": "TCP"},
            ],
            "endpoints": endpoints,
        }
        current = self._get(f"{path}/{self.slice_name}")
        if current is None:
            self._write("POST", path, obj)
        else:
            obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self._write("PUT", f"{path}/{self.slice_name}", obj)
        self._written_endpoints = endpoints

    def close(self) -> None:
        """Stop every pod (sidecar processes and simulated servers)."""
        for pod in list(self.pods):
            with contextlib.suppress(Exception):
                self._stop(pod)
