"""A real etcd + kube-apiserver on loopback, for tests, demos and ``make cluster``.

No container engine runs here, so kind/k3d are out; the same two binaries controller-runtime's envtest
uses are built from source (``make tools``) and started directly. RBAC is on, so the operator's
least-privilege Roles can be exercised for real. No controller-manager, scheduler or kubelet runs:
nothing garbage-collects owner references and no pod ever starts — tests act as those controllers.
"""

from __future__ import annotations

import base64
import ctypes
import http.client
import json
import logging
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml

from .binaries import find_binary
from .pki import Pki, write_pki

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_START_ATTEMPTS = 3  # a free port picked here can be taken by another process before the server binds it


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message carries the tail of the failing process's log."""


def free_port() -> int:
    """A port nobody listens on right now (the kernel's choice, so parallel sessions do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Resolved in the parent: after fork() the child may only make the one call, no dlopen, no locks.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """Runs in the child before exec (``preexec_fn``): if the Python process is killed hard, the child
    goes too, instead of lingering and eating the CPU of a shared machine. SIGKILL, because with its
    client gone nothing is worth a graceful shutdown, and kube-apiserver's can hang for minutes once
    etcd is gone."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _crd_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in the given files or directories of ``*.yaml``."""
    docs: list[dict[str, Any]] = []
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            for doc in yaml.safe_load_all(file.read_text()):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    docs.append(doc)
    return docs


class _Process:
    """One server process with its log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, append: bool = False) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab" if append else "wb")
        self.popen = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop them in order
            preexec_fn=die_with_parent,  # noqa: PLW1509 (only prctl, resolved before fork)
        )

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise ControlPlaneError(f"{self.name} exited with {code}:\n{_tail(self.log_path)}")

    def stop(self, timeout: float = 15.0, kill: bool = False) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


class LocalCluster:
    """etcd + kube-apiserver with RBAC, an admin token, a kubeconfig and CRDs installed.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``workdir`` holds the data, certs
    and logs; when not given a temporary directory is used and removed on stop.
    """

    context_name = "datajax-local"

    def __init__(
        self,
        crd_paths: Sequence[Path] = (),
        workdir: Path | None = None,
        kubeconfig: Path | None = None,
        ready_timeout: float = 180.0,
    ) -> None:
        self._crd_paths = [Path(p) for p in crd_paths]
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="datajax-cluster-"))
        self.kubeconfig = Path(kubeconfig) if kubeconfig else self.workdir / "kubeconfig"
        self._ready_timeout = ready_timeout
        self.token = secrets.token_urlsafe(32)
        self.apiserver_port = 0
        self._processes: list[_Process] = []
        self._pki: Pki | None = None
        self.startup_seconds: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def ca_cert(self) -> Path:
        assert self._pki is not None, "start() first"
        return self._pki.ca_cert

    def start(self) -> None:
        """Start etcd and kube-apiserver, wait for /readyz, write the kubeconfig, install the CRDs.
        On any failure everything started so far is stopped again: no orphans on a shared machine."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pki = write_pki(self.workdir / "pki")
        token_file = self.workdir / "tokens.csv"
        token_file.write_text(f'{self.token},admin,admin,"system:masters"\n')
        token_file.chmod(0o600)
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_servers(attempt)
                break
            except ControlPlaneError as err:
                self._stop_servers()
                if attempt == _START_ATTEMPTS or "address already in use" not in str(err):
                    raise
                log.warning("control plane start attempt %d failed; retrying on new ports", attempt)
        t_ready = time.monotonic()
        self.write_kubeconfig(self.kubeconfig)
        self.install_crds(_crd_documents(self._crd_paths))
        self.startup_seconds.update(
            apiserver_ready=t_ready - t0,
            crds=time.monotonic() - t_ready,
            total=time.monotonic() - t0,
        )
        log.info(
            "control plane ready at %s in %.1f s (API server ready %.1f s, CRDs %.1f s)",
            self.server,
            self.startup_seconds["total"],
            self.startup_seconds["apiserver_ready"],
            self.startup_seconds["crds"],
        )

    def stop(self) -> None:
        """Stop the API server before etcd (so it does not log storage errors), then drop the state."""
        self._stop_servers()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def check_alive(self) -> None:
        """Raise if a server died (``make cluster`` polls this to exit instead of serving nothing)."""
        for proc in self._processes:
            proc.check_alive()

    def restart(self, etcd: bool = True, kill: bool = False) -> float:
        """Stop kube-apiserver (and etcd, when asked) and start them again with the same ports,
        certificates, tokens and etcd data: what clients see of a control-plane upgrade, or with
        ``kill`` (SIGKILL, no graceful shutdown) of a crash. Returns the seconds until the API server
        was ready again."""
        t0 = time.monotonic()
        names = {"kube-apiserver", "etcd"} if etcd else {"kube-apiserver"}
        stopped = [proc for proc in self._processes if proc.name in names]
        for proc in reversed(stopped):
            proc.stop(kill=kill)
        self._processes = [
            proc if proc.name not in names else _Process(proc.name, proc.argv, proc.log_path, append=True)
            for proc in self._processes
        ]
        self._wait_ready()
        return time.monotonic() - t0

    def _stop_servers(self) -> None:
        for proc in reversed(self._processes):
            proc.stop()
        self._processes.clear()

    def _start_servers(self, attempt: int) -> None:
        assert self._pki is not None
        etcd_port, peer_port, self.apiserver_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        data_dir = self.workdir / f"etcd-{attempt}"
        etcd = _Process(
            "etcd",
            [
                str(find_binary("etcd")),
                "--name=default",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            self.workdir / "etcd.log",
        )
        self._processes.append(etcd)
        # The API server retries its storage connection, so both start at once: saves etcd's start-up.
        apiserver = _Process(
            "kube-apiserver",
            [
                str(find_binary("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # no Service points at this server (nothing runs in-cluster), and the reconciler of
                # the `kubernetes` endpoints refuses a loopback address
                "--endpoint-reconciler-type=none",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={self._pki.serving_cert}",
                f"--tls-private-key-file={self._pki.serving_key}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                # a /16: make bench creates thousands of ClusterIP Services (a /24 holds 254)
                "--service-cluster-ip-range=10.0.0.0/16",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                f"--service-account-issuer=https://127.0.0.1:{self.apiserver_port}/",
                f"--service-account-key-file={self._pki.sa_public_key}",
                f"--service-account-signing-key-file={self._pki.sa_private_key}",
                "--profiling=false",
            ],
            self.workdir / "kube-apiserver.log",
        )
        self._processes.append(apiserver)
        self._wait_ready()

    # -- talking to the server -------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def get(self, path: str) -> tuple[int, bytes]:
        """A GET as admin; used for readiness and discovery checks before any client is configured."""
        return self.request("GET", path)

    def request(self, method: str, path: str, obj: dict[str, Any] | None = None) -> tuple[int, bytes]:
        """One admin request with the standard library: the tool must work before, and without, any
        Kubernetes client library."""
        request = urllib.request.Request(
            self.server + path,
            data=None if obj is None else json.dumps(obj).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30, context=self._ssl_context()) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._ready_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, body = self.get("/readyz")
                if status == 200:
                    return
                last = f"HTTP {status}: {body.decode(errors='replace')[-300:]}"
            except (OSError, http.client.HTTPException) as err:  # not listening yet, or mid-start TLS
                last = str(err)
            time.sleep(0.25)
        raise ControlPlaneError(
            f"kube-apiserver not ready after {self._ready_timeout:.0f} s ({last}):\n"
            f"{_tail(self.workdir / 'kube-apiserver.log')}"
        )

    def write_kubeconfig(self, path: Path) -> None:
        """A self-contained kubeconfig (CA embedded) so it still works when copied elsewhere."""
        ca_data = base64.b64encode(self.ca_cert.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.context_name,
                    "cluster": {"server": self.server, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": self.context_name,
                    "context": {"cluster": self.context_name, "user": "admin", "namespace": "default"},
                }
            ],
            "current-context": self.context_name,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    def install_crds(self, crds: list[dict[str, Any]]) -> None:
        """Create the CRDs and wait until each is Established and served by discovery, so a client
        (or kopf) that starts right after sees the resource."""
        for crd in crds:
            status, body = self.request(
                "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd
            )
            if status not in (201, 409):
                raise ControlPlaneError(f"installing CRD {crd['metadata']['name']}: HTTP {status} {body!r}")
        deadline = time.monotonic() + 60
        for crd in crds:
            name = crd["metadata"]["name"]
            group = crd["spec"]["group"]
            plural = crd["spec"]["names"]["plural"]
            versions = [v["name"] for v in crd["spec"]["versions"] if v.get("served", True)]
            while not self._crd_served(name, group, plural, versions):
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} not established within 60 s")
                time.sleep(0.1)

    def _crd_served(self, name: str, group: str, plural: str, versions: list[str]) -> bool:
        status, body = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        if status != 200:
            return False
        # conditions is null until the CRD controllers' first pass
        conditions = (json.loads(body).get("status") or {}).get("conditions") or []
        if not any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return False
        for version in versions:
            status, body = self.get(f"/apis/{group}/{version}")
            if status != 200 or not any(r["name"] == plural for r in json.loads(body).get("resources") or []):
                return False
            # and listable: right after creation the watch cache answers 429 "storage is initializing"
            if self.get(f"/apis/{group}/{version}/{plural}?limit=1")[0] != 200:
                return False
        return True
