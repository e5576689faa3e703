"""What a node's container runtime would run for the model's pods, on loopback.

The pods themselves are real objects: the Deployment controller creates them (through a ReplicaSet),
kube-scheduler binds them to a node of the TPU pool their node selector names, kwok (playing kubelet)
gives them a pod IP, phase Running and, after a warm-up delay, Ready, and the EndpointSlice controller
lists them. No container runs, so for every Running pod this module starts what its containers would
serve, bound to the loopback address the control plane maps the pod's IP to
(:meth:`LocalCluster.dial_map`, the one place that mapping lives):

- the vLLM container: a simulated vLLM server (its `/metrics` driven by the traffic model) on the
  container's `http` port;
- the `datajax-sidecar` container: the **real** sidecar process, started with the exact command and
  arguments of the pod's container, its upstream pointed at that vLLM; the paths its volume mounts
  would show are mapped to a directory per pod, and a ConfigMap volume is written there from the
  ConfigMap's data and refreshed, as the kubelet does.

When the pod goes (deleted by the ReplicaSet controller on a scale-down, or by the garbage collector)
its processes are stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from datajax_devtools.demo.vllm_server import SimulatedVllmFleet
from datajax_devtools.localcluster import LocalCluster, die_with_parent, stop_process

log = logging.getLogger(__name__)

SIDECAR = "datajax-sidecar"


def container_port(pod: dict[str, Any], name: str) -> int:
    """The containerPort named ``name`` in the pod (the Service's targetPort names it too)."""
    for container in pod["spec"]["containers"]:
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return int(port["containerPort"])
    raise RuntimeError(f"pod {pod['metadata']['name']} has no port named {name}")


@dataclass
class PodProcesses:
    """The processes of one Running pod, and its mounted files."""

    name: str
    address: str
    """The loopback address its processes listen on (mapped from the pod IP)."""
    pod_ip: str
    directory: Path
    sidecar: subprocess.Popen[bytes]
    log_file: IO[bytes]
    config_maps: dict[Path, str] = field(default_factory=dict)
    """Directory of a ConfigMap volume -> the ConfigMap's name."""


class ContainerRuntime:
    """Keeps one process set per Running pod of a selector (call :meth:`sync`)."""

    def __init__(
        self, cluster: LocalCluster, fleet: SimulatedVllmFleet, namespace: str, selector: str, workdir: Path
    ) -> None:
        self.cluster = cluster
        self.fleet = fleet
        self.namespace = namespace
        self.selector = selector
        self.workdir = workdir
        self.pods: dict[str, PodProcesses] = {}

    def _get(self, path: str) -> dict[str, Any] | None:
        status, body = self.cluster.request("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status} {body[-300:]!r}")
        result: dict[str, Any] = json.loads(body)
        return result

    def sync(self) -> None:
        """Start the processes of new Running pods, stop those of pods that are gone or going."""
        query = urllib.parse.urlencode({"labelSelector": self.selector})
        listed = self._get(f"/api/v1/namespaces/{self.namespace}/pods?{query}") or {"items": []}
        running = {
            pod["metadata"]["name"]: pod
            for pod in listed["items"]
            if pod["status"].get("phase") == "Running"
            and pod["status"].get("podIP")
            and not pod["metadata"].get("deletionTimestamp")
        }
        for name in [n for n in self.pods if n not in running]:
            self._stop(self.pods.pop(name))
        for name, pod in running.items():
            if name not in self.pods:
                self.pods[name] = self._start(pod)
        for processes in self.pods.values():
            self._write_config_maps(processes.config_maps)

    def _start(self, pod: dict[str, Any]) -> PodProcesses:
        name = pod["metadata"]["name"]
        pod_ip = pod["status"]["podIP"]
        address = self.cluster.loopback_for(pod_ip)
        directory = self.workdir / "pods" / name
        directory.mkdir(parents=True, exist_ok=True)
        spec = pod["spec"]
        args = [a for c in spec["containers"] for a in c.get("args") or []]
        served = next((a.split("=", 1)[1] for a in args if a.startswith("--served-model-name=")), name)
        max_len = next((int(a.split("=", 1)[1]) for a in args if a.startswith("--max-model-len=")), None)
        if max_len is not None and max_len != self.fleet.traffic.slice.max_model_len:
            assumed = self.fleet.traffic.slice.max_model_len
            raise RuntimeError(f"the traffic model assumes --max-model-len {assumed}, the pod says {max_len}")
        http_port = container_port(pod, "http")
        self.fleet.start(name, served, address, http_port)

        container = next(c for c in spec["containers"] if c["name"] == SIDECAR)
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
        argv += self._pod_args(container.get("args", []), address, http_port, mounts)
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
        log.info("pod %s (IP %s): sidecar pid %d on %s", name, pod_ip, sidecar.pid, address)
        return PodProcesses(name, address, pod_ip, directory, sidecar, log_file, config_maps)

    @staticmethod
    def _command(program: str) -> str:
        """The container's program from this environment (the venv's console script)."""
        beside = Path(sys.executable).parent / program
        found = str(beside) if beside.exists() else shutil.which(program)
        if found is None:
            raise RuntimeError(f"{program} not found (run `make install`)")
        return found

    def _pod_args(self, args: list[str], address: str, http_port: int, mounts: dict[str, Path]) -> list[str]:
        """The container's arguments with the pod's address and the mounted paths made local: in the
        pod the sidecar reaches vLLM on 127.0.0.1 (one network namespace), here on the pod's
        loopback address; it listens on the container's port at that address."""
        out: list[str] = []
        values = iter(args)
        for arg in values:
            if arg == "--upstream":
                next(values)
                out += [arg, f"http://{address}:{http_port}/metrics"]
            elif arg == "--port":
                out += [arg, next(values), "--host", address]
            else:
                out.append(self._local_path(arg, mounts))
        return out

    @staticmethod
    def _local_path(arg: str, mounts: dict[str, Path]) -> str:
        for mount_path, local in mounts.items():
            if arg == mount_path or arg.startswith(mount_path + "/"):
                return str(local) + arg[len(mount_path) :]
        return arg

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

    def _stop(self, pod: PodProcesses) -> None:
        self.fleet.stop(pod.name)
        stop_process(pod.sidecar, 10)
        pod.log_file.close()
        log.info("pod %s stopped", pod.name)

    def close(self) -> None:
        """Stop every pod's processes."""
        for name in list(self.pods):
            with contextlib.suppress(Exception):
                self._stop(self.pods.pop(name))
