"""The local demo behind `make run`: the whole product on one machine, driven by a traffic model.

Real: etcd, kube-apiserver, kube-scheduler and kube-controller-manager (127.0.0.1: the Deployment,
ReplicaSet, EndpointSlice and garbage-collector controllers), the CRD, the operator process, one
`datajax-sidecar serve` process per serving pod, kubectl. Simulated: vLLM's `/metrics` (a traffic model
over a real vLLM scrape); the kubelet, by kwok on GKE-shaped TPU nodes (pod IPs, Running, Ready after
a warm-up delay); the containers, as processes on the loopback address of each pod's IP. The story:
busy traffic fills in $/Mtok, p95 and the prefix-cache hit ratio; traffic drops until the cost
ceiling is breached for a whole window (condition, Event, ScaleDown: the real Deployment ->
ReplicaSet -> pod path); traffic returns and the model recovers. Every wait has a deadline, and
every process started here is stopped on the way out, including on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import yaml

from datajax_devtools.demo.pods import ContainerRuntime
from datajax_devtools.demo.traffic import TrafficModel
from datajax_devtools.demo.vllm_server import SimulatedVllmFleet
from datajax_devtools.localcluster import LocalCluster, find_binary, free_port, nodepools, stop_process
from datajax_operator.api.spec import duration_seconds
from datajax_operator.api.tpu import CATALOG

STEPS = 8
COST_CONDITION = "CostCeilingBreached"


class DemoError(RuntimeError):
    """Something the demo waits for did not happen in time; the message says what."""


@dataclass(frozen=True)
class Timing:
    """How fast the demo runs: `make run` takes the full one, the e2e test the short one."""

    window: str
    """cost.window of the demo model: how long the cost must stay above the ceiling."""
    sidecar_interval: str
    observe_interval: str
    resync_seconds: float
    dwell_seconds: float
    """Pause after each milestone, so a person can read the table (0 in short mode)."""


FULL = Timing(
    window="20s", sidecar_interval="1s", observe_interval="2s", resync_seconds=2.0, dwell_seconds=6.0
)
SHORT = Timing(
    window="10s", sidecar_interval="1s", observe_interval="1s", resync_seconds=1.0, dwell_seconds=0.0
)

BUSY_RPS = 10.0
QUIET_RPS = 1.5
REPLICAS = 2
WARMUP_SECONDS = 3.0
"""How long kwok keeps a started pod not Ready: the stand-in for weight loading and XLA compile."""
ACTION = "ScaleDown"


@dataclass
class Sample:
    """What the demo saw of the model at one instant."""

    at: float
    cost: float | None
    p95: float | None
    prefix_hit: float | None
    breached: str | None
    deployment_replicas: int | None
    ready: int


@dataclass
class Record:
    """Times and figures for the summary."""

    started: float
    marks: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    def between(self, start: str, end: str) -> list[Sample]:
        lo, hi = self.marks.get(start, math.inf), self.marks.get(end, math.inf)
        return [s for s in self.samples if lo <= s.at <= hi]


class Narrator:
    """Numbered steps and timestamped lines on stdout (flushed: `make run` and tests read it live)."""

    def __init__(self, out: TextIO, started: float) -> None:
        self.out = out
        self.started = started

    def clock(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def step(self, number: int, text: str) -> None:
        self.say(f"\n[{number}/{STEPS}] {text}")

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def live(self, text: str) -> None:
        for line in text.rstrip("\n").splitlines():
            self.say(f"  {self.clock():>5} | {line}")


class Demo:
    """One run of the demo; :meth:`run` returns the exit code."""

    def __init__(
        self,
        repo: Path,
        model_file: Path,
        timing: Timing,
        workdir: Path,
        out: TextIO,
    ) -> None:
        self.repo = repo
        self.model_file = model_file
        self.timing = timing
        self.workdir = workdir
        self.started = time.monotonic()
        self.say = Narrator(out, self.started)
        self.record = Record(self.started)
        self.cluster: LocalCluster | None = None
        self.operator: subprocess.Popen[bytes] | None = None
        self.fleet: SimulatedVllmFleet | None = None
        self.runtime: ContainerRuntime | None = None
        self._stop_runtime = threading.Event()
        self._runtime_thread: threading.Thread | None = None
        self._runtime_error: str | None = None
        self.model: dict[str, Any] = {}
        self.kubectl_path = ""
        self._shown_row = ""
        self._shown_events: set[str] = set()
        self._shown_deployment = ""

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return str(self.model["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.model["metadata"]["name"])

    def kubectl(self, *args: str, check: bool = True) -> str:
        """The real kubectl against the demo's API server."""
        assert self.cluster is not None
        result = subprocess.run(
            [self.kubectl_path, *args],
            capture_output=True,
            text=True,
            env={**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)},
            timeout=30,
            check=False,
        )
        if check and result.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def get(self, path: str) -> dict[str, Any] | None:
        assert self.cluster is not None
        status, body = self.cluster.request("GET", path)
        if status != 200:
            return None
        result: dict[str, Any] = json.loads(body)
        return result

    def model_object(self) -> dict[str, Any] | None:
        return self.get(f"/apis/datajax.dev/v1alpha1/namespaces/{self.namespace}/datajaxmodels/{self.name}")

    def deployment(self) -> dict[str, Any] | None:
        return self.get(f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.name}")

    @staticmethod
    def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
        for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
            if condition.get("type") == kind:
                result: dict[str, Any] = condition
                return result
        return {}

    # -- watching ---------------------------------------------------------------------------------

    def observe(self) -> Sample:
        """Read the model and its Deployment, record a sample, and print what changed, as kubectl
        shows it."""
        model = self.model_object()
        deployment = self.deployment()
        metrics = ((model or {}).get("status") or {}).get("metrics") or {}
        sample = Sample(
            at=time.monotonic(),
            cost=metrics.get("costUSDPerMillionTokens"),
            p95=metrics.get("p95LatencySeconds"),
            prefix_hit=metrics.get("prefixCacheHitRatio"),
            breached=self.condition(model, COST_CONDITION).get("status"),
            deployment_replicas=(deployment or {}).get("spec", {}).get("replicas"),
            ready=int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0),
        )
        self.record.samples.append(sample)
        self.show_model()
        self.show_deployment()
        self.show_events()
        return sample

    def show_model(self, header: bool = False) -> None:
        header = header or not self._shown_row
        text = self.kubectl("get", "djm", self.name, "-n", self.namespace)
        row = text.rstrip().splitlines()[-1]  # printed under the header shown once, mostly aligned
        key = " ".join(row.split()[:-1])  # without the Age column
        if header or key != self._shown_row:
            self._shown_row = key
            self.say.live(text if header else row)

    def show_deployment(self) -> None:
        text = self.kubectl("get", "deployment", self.name, "-n", self.namespace, "--no-headers", check=False)
        key = " ".join(text.split()[:-1])
        if text and key != self._shown_deployment:
            self._shown_deployment = key
            self.say.live("deployment/" + text.strip())

    def show_events(self) -> None:
        text = self.kubectl("events", "-n", self.namespace, "--for", f"datajaxmodel/{self.name}", check=False)
        for line in text.splitlines()[1:]:
            key = " ".join(line.split()[1:])  # without LAST SEEN; the columns re-align as rows come
            if key and key not in self._shown_events:
                self._shown_events.add(key)
                self.record.events.append(key)
                self.say.live("event: " + key)

    def wait_for(self, what: str, done: Callable[[Sample], bool], timeout: float) -> Sample:
        """Poll (and show) until ``done`` holds for a sample; DemoError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_processes()
            sample = self.observe()
            if done(sample):
                return sample
            if time.monotonic() > deadline:
                raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(1.0)

    def dwell(self) -> None:
        end = time.monotonic() + self.timing.dwell_seconds
        while time.monotonic() < end:
            self.observe()
            time.sleep(1.0)

    def check_processes(self) -> None:
        if self.cluster is not None:
            self.cluster.check_alive()
        if self.operator is not None and self.operator.poll() is not None:
            raise DemoError(
                f"the operator exited with {self.operator.returncode} (log: {self.workdir / 'operator.log'})"
            )
        if self._runtime_error is not None:
            raise DemoError(f"running the pods' processes failed: {self._runtime_error}")

    # -- the steps --------------------------------------------------------------------------------

    def run(self) -> int:
        say = self.say
        say.say("datajax-operator: the local demo (the whole product on this machine, no cloud)")
        say.say(
            "  real:      etcd, kube-apiserver, kube-scheduler, kube-controller-manager on 127.0.0.1, the"
        )
        say.say("             CRD, the operator (datajax-operator run), a datajax-sidecar per pod, kubectl")
        say.say("  simulated: vLLM's /metrics (a traffic model advancing a real vLLM 0.32.0 scrape); the")
        say.say(
            f"             kubelet (kwok on GKE-shaped TPU nodes: pod IPs, Ready {WARMUP_SECONDS:g} s after "
            "start for TPU warm-up);"
        )
        say.say("             containers (processes on the loopback address of each pod's IP)")
        self.tools()
        self.control_plane()
        self.start_operator()
        self.apply_model()
        self.start_pods()
        self.busy()
        self.quiet()
        self.recover()
        self.summary()
        return 0

    def tools(self) -> None:
        self.say.step(1, "tools: the pinned control plane and kubectl built by `make tools`")
        names = ("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager", "kwok", "kubectl")
        paths = [find_binary(name) for name in names]
        self.kubectl_path = str(paths[-1])
        for path in paths:
            self.say.say(f"  {path.name:15} {path.resolve()}")

    def control_plane(self) -> None:
        self.say.step(
            2,
            "control plane: etcd + kube-apiserver (RBAC on), scheduler, controllers, kwok's TPU node pools, "
            "the CRD",
        )
        self.cluster = LocalCluster(
            crd_paths=[self.repo / "crds"],
            workdir=self.workdir / "cluster",
            kubeconfig=self.workdir / "kubeconfig",
            pod_ready_delay=WARMUP_SECONDS,
        )
        self.cluster.start()
        self.say.say(f"  API server {self.cluster.server}: {self.cluster.startup_summary()}")
        self.say.say(f"  kubeconfig {self.cluster.kubeconfig}")
        self.say.say("  " + self.kubectl("get", "crd", "-o", "name").strip())
        v6e = f"{nodepools.ACCELERATOR_LABEL}={CATALOG['v6e'].accelerator}"
        self.say.say(f"  $ kubectl get nodes -l {v6e} -L ...")
        columns = (nodepools.NODEPOOL_LABEL, nodepools.TOPOLOGY_LABEL, nodepools.INSTANCE_TYPE_LABEL)
        self.say.live(self.kubectl("get", "nodes", "-l", v6e, "-L", ",".join(columns)))

    def start_operator(self) -> None:
        assert self.cluster is not None
        self.say.step(
            3,
            f"operator: datajax-operator run (observes every {self.timing.observe_interval}, "
            f"sidecars scrape every {self.timing.sidecar_interval})",
        )
        config = self.workdir / "operator-config.yaml"
        config.write_text(yaml.safe_dump({"sidecarInterval": self.timing.sidecar_interval}))
        liveness = free_port()
        command = [
            sys.executable,
            "-m",
            "datajax_devtools.demo.operator_process",
            *(f"--dial={k}={v}" for k, v in self.cluster.dial_map().items()),
            "run",
            "--kubeconfig",
            str(self.cluster.kubeconfig),
            "--config",
            str(config),
            "--bind-address",
            "127.0.0.1",
            "--liveness-port",
            str(liveness),
            "--metrics-port",
            str(free_port()),
            "--observe-interval",
            self.timing.observe_interval,
            "--resync-seconds",
            str(self.timing.resync_seconds),
            "--log-format",
            "text",
        ]
        log = (self.workdir / "operator.log").open("wb")
        self.operator = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            self.check_processes()
            url = f"http://127.0.0.1:{liveness}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status == 200:
                    break
            if time.monotonic() > deadline:
                raise DemoError("the operator's /healthz did not answer within 60 s")
            time.sleep(0.25)
        self.say.say(
            f"  pid {self.operator.pid}, /healthz OK on 127.0.0.1:{liveness}, "
            f"log {self.workdir / 'operator.log'}"
        )

    def apply_model(self) -> None:
        self.say.step(4, f"model: kubectl apply -f {self.model_file} (a demo copy)")
        self.model = yaml.safe_load(self.model_file.read_text(encoding="utf-8"))
        spec = self.model["spec"]
        spec["replicas"] = REPLICAS
        spec.setdefault("cost", {}).update(window=self.timing.window, action=ACTION)
        demo_file = self.workdir / f"{self.name}-demo.yaml"
        demo_file.write_text(yaml.safe_dump(self.model, sort_keys=False))
        ceiling = spec["cost"].get("ceilingUSDPerMillionTokens", 3.0)
        self.say.say(
            f"  changed for the demo: replicas: {REPLICAS}, cost.window: {self.timing.window} (instead of "
            f"minutes), cost.action: {ACTION}; ceiling ${ceiling:g}/Mtok"
        )
        self.kubectl("create", "namespace", self.namespace)
        self.say.say("  " + self.kubectl("apply", "-f", str(demo_file)).strip())
        self.wait_for(
            "the operator to validate the spec and create the Deployment",
            lambda s: s.deployment_replicas is not None,
            timeout=60,
        )
        model = self.model_object() or {}
        status = model.get("status") or {}
        placement = status.get("placement") or {}
        mesh = status.get("mesh") or {}
        self.say.say(
            f"  SpecValid={self.condition(model, 'SpecValid').get('status')}: "
            f"{placement.get('chips')} chips of "
            f"{placement.get('accelerator')} ({placement.get('machineType')}), mesh {mesh.get('axes')} = "
            f"{mesh.get('shape')}; children:"
        )
        children = self.kubectl(
            "get",
            "deployment,service,configmap",
            "-n",
            self.namespace,
            "-l",
            "app.kubernetes.io/managed-by=datajax-operator",
            "-o",
            "name",
        )
        for line in children.split():
            self.say.say(f"    {line}")

    def start_pods(self) -> None:
        assert self.cluster is not None
        self.say.step(
            5,
            "pods: ReplicaSet -> pods -> scheduled on the v6e pool -> kwok runs them; per pod a simulated "
            "vLLM + the real datajax-sidecar",
        )
        traffic = TrafficModel()
        self.fleet = SimulatedVllmFleet(traffic)
        selector = ",".join(
            f"{k}={v}"
            for k, v in sorted((self.deployment() or {})["spec"]["selector"]["matchLabels"].items())
        )
        self.runtime = ContainerRuntime(self.cluster, self.fleet, self.namespace, selector, self.workdir)
        self._runtime_thread = threading.Thread(
            target=self._runtime_loop, name="container-runtime", daemon=True
        )
        self._runtime_thread.start()
        self.wait_for(
            f"{REPLICAS} ready replicas",
            lambda s: (
                s.ready == REPLICAS and self.condition(self.model_object(), "Ready").get("status") == "True"
            ),
            timeout=60,
        )
        self.say.say(f"  $ kubectl get pods -n {self.namespace} -o wide")
        self.say.live(self.kubectl("get", "pods", "-n", self.namespace, "-o", "wide"))
        for pod in self.runtime.pods.values():
            self.say.say(
                f"  pod {pod.name} (IP {pod.pod_ip}) runs on {pod.address}: vLLM (simulated), "
                f"datajax-sidecar pid {pod.sidecar.pid}"
            )
        self.say.say("  $ kubectl get endpointslices -n " + self.namespace)
        self.say.live(self.kubectl("get", "endpointslices", "-n", self.namespace))

    def _runtime_loop(self) -> None:
        assert self.runtime is not None
        while not self._stop_runtime.wait(0.5):
            try:
                self.runtime.sync()
            except Exception as err:  # surfaced by check_processes in the main thread
                self._runtime_error = f"{type(err).__name__}: {err}"
                return

    def _traffic(self, rps: float) -> str:
        assert self.fleet is not None
        self.fleet.traffic.set_rate(rps, time.time())
        tokens = self.fleet.traffic.tokens_per_second()
        return f"{rps:g} requests/s, about {tokens:,.0f} tokens/s"

    def busy(self) -> None:
        self.say.step(6, f"traffic: busy ({self._traffic(BUSY_RPS)}); $/Mtok, P95 and PrefixHit fill in")
        self.record.mark("busy")
        self.say.say(f"  $ kubectl get djm -n {self.namespace}   (a row is printed when a figure changes)")
        self.show_model(header=True)
        self.wait_for(
            "the operator to report the sidecars' figures with the cost under the ceiling",
            lambda s: s.cost is not None and s.breached == "False",
            timeout=self._window_seconds() * 3 + 30,
        )
        self.dwell()

    def quiet(self) -> None:
        self.say.step(
            7, f"traffic drops ({self._traffic(QUIET_RPS)}): the same slices now cost more per token"
        )
        self.record.mark("quiet")
        sample = self.wait_for(
            f"{COST_CONDITION}=True and the ScaleDown action",
            lambda s: s.breached == "True" and (s.deployment_replicas or REPLICAS) < REPLICAS,
            timeout=self._window_seconds() * 4 + 30,
        )
        self.record.mark("breached")
        self.show_condition()
        self.wait_for(
            "the Deployment to run the scaled-down replicas",
            lambda s: s.ready == s.deployment_replicas,
            timeout=30,
        )
        self.say.say(
            f"  ScaleDown: Deployment {self.name} {REPLICAS} -> {sample.deployment_replicas} replicas"
        )
        self.dwell()

    def recover(self) -> None:
        self.say.step(
            8,
            f"traffic returns ({self._traffic(BUSY_RPS)}): cost falls under the ceiling, the model recovers",
        )
        self.record.mark("return")
        # and figures again: the new pod's sidecar starts with the pod, a moment after its endpoint
        # appears (the operator bills a slice from then on, answering or not)
        self.wait_for(
            f"{COST_CONDITION}=False, spec.replicas restored and every sidecar read",
            lambda s: (
                s.breached == "False"
                and s.deployment_replicas == REPLICAS
                and s.ready == REPLICAS
                and s.cost is not None
            ),
            timeout=self._window_seconds() * 4 + 30,
        )
        self.record.mark("recovered")
        self.show_condition()
        self.dwell()
        self.record.mark("end")

    def show_condition(self) -> None:
        path = f'{{.status.conditions[?(@.type=="{COST_CONDITION}")]'
        text = self.kubectl(
            "get",
            "djm",
            self.name,
            "-n",
            self.namespace,
            "-o",
            f"jsonpath={COST_CONDITION}={path}.status}} reason={path}.reason}}: {path}.message}}",
        )
        self.say.live(text)

    def _window_seconds(self) -> float:
        return float(duration_seconds(self.timing.window))

    # -- summary and cleanup ----------------------------------------------------------------------

    def summary(self) -> None:
        """What happened, with the figures the model's status showed at each turn of the story."""
        rec, say = self.record, self.say
        model = self.model_object() or {}
        ceiling = float(model["spec"]["cost"].get("ceilingUSDPerMillionTokens", 3.0))

        def span(start: str, end: str) -> str:
            return f"{rec.marks[end] - rec.marks[start]:.0f} s"

        def last(start: str, end: str) -> Sample:
            samples = [s for s in rec.between(start, end) if s.cost is not None]
            return samples[-1] if samples else rec.samples[-1]

        def peak(start: str, end: str, figure: Callable[[Sample], float | None]) -> float:
            return max((v for s in rec.between(start, end) if (v := figure(s)) is not None), default=math.nan)

        def shown(sample: Sample) -> str:
            return f"${sample.cost}/Mtok, P95 {sample.p95} s, PrefixHit {sample.prefix_hit}"

        low = min(
            (s.deployment_replicas for s in rec.between("breached", "return") if s.deployment_replicas),
            default=REPLICAS,
        )
        say.say(
            f"\nSummary ({say.clock()} in all; ceiling ${ceiling:g}/Mtok, cost.window {self.timing.window}, "
            f"cost.action {ACTION})"
        )
        busy = shown(last("busy", "quiet"))
        quiet_peak = peak("quiet", "breached", lambda s: s.cost)
        say.say(f"  busy    {BUSY_RPS:g} req/s on {REPLICAS} slices: {busy}; {COST_CONDITION}=False")
        say.say(
            f"  quiet   {QUIET_RPS:g} req/s: $/Mtok rose to {quiet_peak:.2f}; "
            f"{COST_CONDITION}=True {span('quiet', 'breached')} after the drop; "
            f"ScaleDown {REPLICAS} -> {low} slices"
        )
        say.say(
            f"  return  {BUSY_RPS:g} req/s: on {low} slice(s) P95 rose to "
            f"{peak('return', 'recovered', lambda s: s.p95):g} s; {COST_CONDITION}=False "
            f"{span('return', 'recovered')} after traffic returned; back to {REPLICAS} slices"
        )
        say.say(f"  end     {shown(last('recovered', 'end'))}")
        cost_events = [e for e in rec.events if "$" in e and "ceiling" in e]
        say.say(f"  events  {len(rec.events)} on datajaxmodel/{self.name}; about the cost:")
        for event in cost_events:
            kind, reason, _, message = [*event.split(" ", 3), "", "", "", ""][:4]
            line = f"{kind:7} {reason:15} {message.split(';')[0]}"
            say.say(f"          {line if len(line) <= 140 else line[:137] + '...'}")
        say.say(
            "  real: API server, etcd, scheduler, Deployment/ReplicaSet/EndpointSlice/GC controllers, "
            "operator, sidecars, kubectl"
        )
        say.say(
            "  simulated: vLLM traffic; the kubelet (kwok: pod IPs, readiness after a warm-up delay); "
            "containers (loopback processes); LeaderWorkerSet (not built here, unused by this model)"
        )
        say.say("  next: README.md (Where to go next), docs/architecture.md, docs/install-gke.md")

    def close(self) -> None:
        """Stop everything this run started, newest first."""
        self._stop_runtime.set()
        if self._runtime_thread is not None:
            self._runtime_thread.join(timeout=15)
        if self.runtime is not None:
            self.runtime.close()
        if self.fleet is not None:
            self.fleet.close()
        if self.operator is not None:
            stop_process(self.operator, 15)
        if self.cluster is not None:
            self.cluster.stop()


@contextlib.contextmanager
def _interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """Ctrl-C and SIGTERM end the demo through the same cleanup, once: further signals are ignored
    while it runs (under `make run`, make passes the terminal's Ctrl-C on to us a second time)."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_demo(
    repo: Path,
    *,
    model_file: Path,
    timing: Timing,
    workdir: Path | None = None,
    keep: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Run the demo; 0 when the story played out, 1 when a step failed, 130 on Ctrl-C/SIGTERM."""
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="datajax-demo-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    demo = Demo(repo, model_file, timing, work, out)
    code = 1
    with _interrupts_as_keyboard_interrupt():
        try:
            code = demo.run()
        except KeyboardInterrupt:
            print("\ninterrupted: stopping everything the demo started", file=out, flush=True)
            code = 130
        except (DemoError, OSError, RuntimeError) as err:
            print(f"\ndemo failed: {err}\n  logs: {work}", file=out, flush=True)
            keep = True
        finally:
            try:
                demo.close()
            except KeyboardInterrupt:  # a second Ctrl-C: finish the cleanup anyway
                demo.close()
    if own and not keep:
        shutil.rmtree(work, ignore_errors=True)
    print("stopped: no process of the demo is left running", file=out, flush=True)
    return code
