"""A real control plane on loopback, for tests, demos and ``make cluster``.

No container engine runs here, so kind/k3d are out; the binaries are built from source (``make tools``)
and started directly: etcd and kube-apiserver (what controller-runtime's envtest runs), RBAC on, so the
operator's least-privilege Roles are exercised for real; and, unless ``controllers=False``,
kube-scheduler, kube-controller-manager (only the controllers our objects need, see
:data:`CONTROLLERS`) and kwok, which plays kubelet for GKE-shaped TPU node pools (nodepools.yaml).
So Deployments get ReplicaSets and pods, pods are scheduled onto the pool their node selector names,
kwok gives them IPs and readiness, the EndpointSlice controller lists them, and the garbage collector
follows owner references. Each component logs in with its own identity from the token file.

No container runs: a pod's processes, where a test or the demo needs them, run on loopback at the
address :meth:`LocalCluster.dial_map` maps the pod's IP to.
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

from . import kwok, nodepools
from .binaries import find_binary
from .pki import Pki, write_pki

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_START_ATTEMPTS = 3  # a free port picked here can be taken by another process before the server binds it


CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "job-controller",
    "endpointslice-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)
"""kube-controller-manager's controllers here: what Deployments, the compile gate's Jobs, their pods'
EndpointSlices, owner references and namespace deletion need, and the token controller. No
node-lifecycle controller (kwok sends no heartbeats, so it would taint every node unreachable),
nothing that needs a cloud."""


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


def stop_process(
    popen: subprocess.Popen[bytes], timeout: float, sig: signal.Signals = signal.SIGTERM
) -> None:
    """Send ``sig`` to a process still running and wait up to ``timeout`` seconds, then SIGKILL it."""
    if popen.poll() is None:
        popen.send_signal(sig)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


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
        stop_process(self.popen, timeout, signal.SIGKILL if kill else signal.SIGTERM)
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
        *,
        controllers: bool = True,
        pod_ready_delay: float = 1.0,
        node_pools: Path = nodepools.DATA,
    ) -> None:
        self._crd_paths = [Path(p) for p in crd_paths]
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="datajax-cluster-"))
        self.kubeconfig = Path(kubeconfig) if kubeconfig else self.workdir / "kubeconfig"
        self._ready_timeout = ready_timeout
        self.token = secrets.token_urlsafe(32)
        self.controllers = controllers
        self.pod_ready_delay = pod_ready_delay
        self.node_pools = nodepools.load(node_pools)
        # Pod IPs 10.A.B.N are dialled at 127.A.B.N (:meth:`dial_map`); a random A.B per cluster keeps
        # parallel sessions on one machine from listening on each other's addresses.
        rand = secrets.SystemRandom()
        self.pod_network = (rand.randrange(64, 128), rand.randrange(0, 256))
        self._component_tokens = {
            user: secrets.token_urlsafe(32)
            for user in ("system:kube-scheduler", "system:kube-controller-manager", "system:kwok")
        }
        self.apiserver_port = 0
        self.scheduler_port = 0
        self.controller_manager_port = 0
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
    def pod_cidr(self) -> str:
        return f"10.{self.pod_network[0]}.{self.pod_network[1]}.0/24"

    def dial_map(self) -> dict[str, str]:
        """Pod IP -> loopback address its processes listen on: the one rule that maps the addresses
        the EndpointSlice controller publishes to local listeners (10.A.B.N -> 127.A.B.N)."""
        a, b = self.pod_network
        return {ip: self.loopback_for(ip) for ip in (f"10.{a}.{b}.{n}" for n in range(1, 255))}

    @staticmethod
    def loopback_for(pod_ip: str) -> str:
        """The loopback address of :meth:`dial_map` for one pod IP."""
        return "127." + pod_ip.split(".", 1)[1]

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
        lines = [f'{self.token},admin,admin,"system:masters"']
        lines += [f"{token},{user},{user}" for user, token in self._component_tokens.items()]
        token_file.write_text("\n".join(lines) + "\n")
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
        if self.controllers:
            self._start_controllers()
        t_controllers = time.monotonic()
        self.install_crds(_crd_documents(self._crd_paths))
        t_crds = time.monotonic()
        if self.controllers:
            self._wait_controllers()
        self.startup_seconds.update(
            apiserver_ready=t_ready - t0,
            crds=t_crds - t_controllers,
            controllers=(time.monotonic() - t_crds) + (t_controllers - t_ready),
            total=time.monotonic() - t0,
        )
        log.info("control plane ready at %s: %s", self.server, self.startup_summary())

    def startup_summary(self) -> str:
        """One line of start-up timings, for logs, the test session header and the demo."""
        s = self.startup_seconds
        text = f"ready in {s['total']:.1f} s (API server {s['apiserver_ready']:.1f} s, CRDs {s['crds']:.1f} s"
        if self.controllers:
            nodes = sum(pool.nodes for pool in self.node_pools)
            text += f", scheduler + controller-manager + kwok with {nodes} nodes {s['controllers']:.1f} s"
        return text + ")"

    def stop(self) -> None:
        """Stop the API server before etcd (so it does not log storage errors), then drop the state."""
        self._stop_servers()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def component_pids(self) -> dict[str, int]:
        """Process id per running component (for measurements: tests/bench/control_plane_cost.py)."""
        return {proc.name: proc.popen.pid for proc in self._processes}

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
                # TaintNodesByCondition taints every new Node not-ready until the node-lifecycle
                # controller sees it Ready; that controller does not run here (see CONTROLLERS)
                "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                f"--service-account-issuer=https://127.0.0.1:{self.apiserver_port}/",
                f"--service-account-key-file={self._pki.sa_public_key}",
                f"--service-account-signing-key-file={self._pki.sa_private_key}",
                "--profiling=false",
            ],
            self.workdir / "kube-apiserver.log",
        )
        self._processes.append(apiserver)
        self._wait_ready()

    # -- scheduler, controllers, kwok and the nodes ------------------------------------------------

    def _component_kubeconfig(self, user: str) -> Path:
        path = self.workdir / f"{user.rsplit(':', maxsplit=1)[-1]}.kubeconfig"
        self.write_kubeconfig(path, token=self._component_tokens[user], user=user)
        return path

    def _start_controllers(self) -> None:
        """kwok's RBAC and config, then the three processes, then the nodes (kwok marks them Ready)."""
        assert self._pki is not None
        for obj in kwok.RBAC:
            kind = obj["kind"].lower() + "s"
            status, body = self.request("POST", f"/apis/rbac.authorization.k8s.io/v1/{kind}", obj)
            if status not in (201, 409):
                raise ControlPlaneError(f"creating {obj['kind']} for kwok: HTTP {status} {body!r}")
        kwok_config = self.workdir / "kwok.yaml"
        kwok_config.write_text(kwok.config_text(self.pod_cidr, self.pod_ready_delay))
        self.scheduler_port, self.controller_manager_port = free_port(), free_port()
        common = ["--leader-elect=false", "--bind-address=127.0.0.1", "--profiling=false"]
        scheduler_kubeconfig = self._component_kubeconfig("system:kube-scheduler")
        self._processes.append(
            _Process(
                "kube-scheduler",
                [
                    str(find_binary("kube-scheduler")),
                    f"--kubeconfig={scheduler_kubeconfig}",
                    f"--secure-port={self.scheduler_port}",
                    f"--cert-dir={self.workdir / 'scheduler-certs'}",
                    *common,
                ],
                self.workdir / "kube-scheduler.log",
            )
        )
        kcm_kubeconfig = self._component_kubeconfig("system:kube-controller-manager")
        self._processes.append(
            _Process(
                "kube-controller-manager",
                [
                    str(find_binary("kube-controller-manager")),
                    f"--kubeconfig={kcm_kubeconfig}",
                    f"--controllers={','.join(CONTROLLERS)}",
                    # each controller acts as its own service account with its bootstrap role
                    # (system:controller:deployment-controller, ...), as on a real cluster
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={self._pki.sa_private_key}",
                    f"--root-ca-file={self._pki.ca_cert}",
                    f"--secure-port={self.controller_manager_port}",
                    f"--cert-dir={self.workdir / 'controller-manager-certs'}",
                    *common,
                ],
                self.workdir / "kube-controller-manager.log",
            )
        )
        self._processes.append(
            _Process(
                "kwok",
                [
                    str(find_binary("kwok")),
                    f"--kubeconfig={self._component_kubeconfig('system:kwok')}",
                    f"--config={kwok_config}",
                ],
                self.workdir / "kwok.log",
            )
        )
        for node in nodepools.node_objects(self.node_pools):
            status, body = self.request("POST", "/api/v1/nodes", node)
            if status not in (201, 409):
                raise ControlPlaneError(f"creating node {node['metadata']['name']}: HTTP {status} {body!r}")

    def _wait_controllers(self) -> None:
        """Until the scheduler and controller-manager answer /healthz and kwok has made every node Ready."""
        deadline = time.monotonic() + self._ready_timeout
        waiting = {
            "kube-scheduler": self.scheduler_port,
            "kube-controller-manager": self.controller_manager_port,
        }
        expected = {name for pool in self.node_pools for name in pool.node_names()}
        unverified = ssl.create_default_context()
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE  # their self-signed serving certificates, on loopback
        while True:
            self.check_alive()
            for name, port in list(waiting.items()):
                try:
                    url = f"https://127.0.0.1:{port}/healthz"
                    with urllib.request.urlopen(url, timeout=2, context=unverified) as response:
                        if response.status == 200:
                            del waiting[name]
                except (OSError, http.client.HTTPException):
                    pass
            status, body = self.get("/api/v1/nodes")
            ready = set()
            if status == 200:
                for node in json.loads(body)["items"]:
                    conditions = node.get("status", {}).get("conditions") or []
                    if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                        ready.add(node["metadata"]["name"])
            if not waiting and expected <= ready:
                return
            if time.monotonic() > deadline:
                missing = sorted(waiting) + ([] if expected <= ready else ["kwok"])
                raise ControlPlaneError(
                    f"not ready after {self._ready_timeout:.0f} s: {', '.join(missing)} "
                    f"({len(expected - ready)} nodes not Ready)\n"
                    + "\n".join(f"{n}: {_tail(self.workdir / f'{n}.log', 8)}" for n in missing)
                )
            time.sleep(0.25)

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

    def write_kubeconfig(self, path: Path, token: str | None = None, user: str = "admin") -> None:
        """A self-contained kubeconfig (CA embedded) so it still works when copied elsewhere; the
        admin's unless another token-file user's token is given."""
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
            "users": [{"name": user, "user": {"token": token or self.token}}],
            "contexts": [
                {
                    "name": self.context_name,
                    "context": {"cluster": self.context_name, "user": user, "namespace": "default"},
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
