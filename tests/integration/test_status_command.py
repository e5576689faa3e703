"""`datajax-operator status` against a real API server: the real CLI in a subprocess, with --kubeconfig.

The operator (in-process) fills the status and posts its Events; the test then plays the part of the
sidecars' figures (status.metrics and the cost/latency conditions, written through the status
subresource as `kubectl patch --subresource=status` would) and of another controller posting an
events.k8s.io/v1 Event, and reads what the command prints and how it exits.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import (
    EXAMPLES,
    GROUP,
    PLURAL,
    VERSION,
    Operators,
    RunningOperator,
    cordoned,
    load_example,
    wait_for,
)
from kubernetes import client

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("datajax-operator")


def status_cli(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "status", *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stamp(when: datetime, micro: bool = False) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


class Cluster:
    def __init__(self, api_client: Any, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.events = client.EventsV1Api(api_client)
        self.ns = namespace

    def model(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, name
        )
        return result

    def condition(self, name: str, type_: str) -> str | None:
        conditions = (self.model(name).get("status") or {}).get("conditions", [])
        return next((c["status"] for c in conditions if c["type"] == type_), None)

    def write_figures(self, name: str, *, breached: bool, now: datetime) -> None:
        """status.metrics and the judging conditions, merged into the stored status."""
        stored = self.model(name)["status"]
        mine = {
            "CostCeilingBreached": ("True", "AboveCeiling") if breached else ("False", "UnderCeiling"),
            "LatencySLOBreached": ("False", "WithinSLO"),
        }
        conditions = [c for c in stored["conditions"] if c["type"] not in mine]
        conditions += [
            {"type": t, "status": s, "reason": r, "message": f"{r} over the 10m window",
             "lastTransitionTime": stamp(now - timedelta(minutes=2))}
            for t, (s, r) in mine.items()
        ]  # fmt: skip
        metrics = {
            "costUSDPerMillionTokens": 2.314,
            "costUSDPerHour": 21.6,
            "breakEvenTokensPerSecond": 2000.0,
            "tokensPerSecond": 2592.6,
            "p95LatencySeconds": 1.84,
            "p95TTFTSeconds": 0.21,
            "prefixCacheHitRatio": 0.412,
            "sampledAt": stamp(now - timedelta(seconds=5)),
        }
        body = {"status": {"metrics": metrics, "conditions": conditions}}
        self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, self.ns, PLURAL, name, body)

    def post_events(self, model: dict[str, Any], now: datetime) -> None:
        """One Event through each Events API: core/v1 (involvedObject) and events.k8s.io/v1 (regarding)."""
        ref = {
            "apiVersion": model["apiVersion"],
            "kind": model["kind"],
            "name": model["metadata"]["name"],
            "namespace": self.ns,
            "uid": model["metadata"]["uid"],
        }
        self.core.create_namespaced_event(
            self.ns,
            {
                "metadata": {"generateName": "pager."},
                "involvedObject": ref,
                "type": "Warning",
                "reason": "PagerTest",
                "message": "core/v1 event from the on-call drill",
                "firstTimestamp": stamp(now),
                "lastTimestamp": stamp(now),
                "count": 2,
                "source": {"component": "oncall-drill"},
            },
        )
        self.events.create_namespaced_event(
            self.ns,
            {
                "metadata": {"generateName": "budget-"},
                "regarding": ref,
                "type": "Normal",
                "reason": "BudgetReview",
                "note": "events.k8s.io/v1 event from the budget bot",
                "action": "Review",
                "eventTime": stamp(now, micro=True),
                "reportingController": "example.com/budget-bot",
                "reportingInstance": "budget-bot-0",
            },
        )


def test_status_screen_exit_codes_fleet_and_errors(
    admin_client: Any, namespace: str, operator: RunningOperator, operators: Operators, kubeconfig: Path
) -> None:
    cluster = Cluster(admin_client, namespace)
    empty = status_cli(kubeconfig, "--all", "-n", namespace)
    assert (empty.returncode, empty.stdout) == (0, f'No DataJaxModels in namespace "{namespace}".\n')

    doc = load_example(next(p for p in EXAMPLES if "8b" in p.name), namespace)
    name = doc["metadata"]["name"]
    with cordoned(admin_client, "tpu-v6e-2x4") as uncordon:  # the pod waits for a node meanwhile
        cluster.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
        wait_for(lambda: cluster.condition(name, "Ready") == "False", what="the operator's first status")
        # Progressing: the operator's own status and Events, no figures yet
        progressing = status_cli(kubeconfig, name, "-n", namespace)
        uncordon()
    assert progressing.returncode == 1, progressing.stderr
    out = progressing.stdout
    assert f"{namespace}/{name}   Progressing   generation 1" in out
    assert "ATTENTION (exit 1): not Ready (WorkloadUnavailable)" in out
    assert (
        "1 x v6e 2x4 slice (tpu-v6e-slice): 8 chips = 1 host(s) x 8 chips, ct6e-standard-8t, Deployment"
        in out
    )
    assert "data=1 x model=8  (tensor parallel 8, data parallel 1)" in out
    assert f"Endpoint    http://{name}.{namespace}.svc:8000/v1" in out
    assert re.search(r"\$/Mtok +— \(NoMetrics\) +ceiling 3\.000\n", out), out  # the cost condition says why
    # what the plan already knows, marked as planned until the sidecars measure it (8 chips x $2.70)
    assert re.search(r"\$/hour +21\.60 \(planned\) +not measured yet \(NoMetrics\)\n", out), out
    assert "break-even  2,000.0 tokens/s (planned)\n" in out
    # no Event for the birth of each condition: nothing a person acts on happened yet
    assert "Events      <none>" in out

    # the workload comes up (scheduled, run by kwok, counted by the Deployment controller); the operator
    # marks the model Ready, then stands aside so the figures written below stay exactly as written
    wait_for(lambda: cluster.condition(name, "Ready") == "True", 60, what="Ready=True")
    operators.stop()
    try:
        _figures_and_fleet(cluster, name, kubeconfig)
    finally:
        # a status with fields the operator does not compute would be rewritten on every resync of
        # a later operator (and counted as a change by the steady-state test): leave none behind
        cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def _figures_and_fleet(cluster: Cluster, name: str, kubeconfig: Path) -> None:
    namespace = cluster.ns
    now = datetime.now(UTC)
    cluster.write_figures(name, breached=False, now=now)
    cluster.post_events(cluster.model(name), now)

    ready = status_cli(kubeconfig, name, "-n", namespace)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    out = ready.stdout
    assert f"{namespace}/{name}   Ready   generation 1" in out
    assert "Verdict     OK (exit 0): Ready, no breach" in out
    assert "$/Mtok      2.314             ceiling 3.000     headroom 22.9%" in out
    assert "tokens/s    2,592.6           1.30x break-even" in out
    assert "p95 e2e     1.840 s           SLO 5.000 s       headroom 63.2%" in out
    assert "prefix hit  41.2%" in out and "sampled " in out and "STALE" not in out
    assert "PagerTest" in out and "core/v1 event from the on-call drill" in out and "x2" in out
    assert "BudgetReview" in out and "events.k8s.io/v1 event from the budget bot" in out
    assert "example.com/budget-bot" in out

    as_json = status_cli(kubeconfig, name, "-n", namespace, "-o", "json")
    assert as_json.returncode == 0
    reading = json.loads(as_json.stdout)
    assert reading["healthy"] is True and reading["placement"]["chips"] == 8
    assert reading["figures"]["costHeadroomPercent"] == 22.9
    assert {"PagerTest", "BudgetReview"} <= {e["reason"] for e in reading["events"]}

    cluster.write_figures(name, breached=True, now=now)
    breached = status_cli(kubeconfig, name, "-n", namespace)
    assert breached.returncode == 1
    assert "ATTENTION (exit 1): CostCeilingBreached" in breached.stdout

    fleet = status_cli(kubeconfig, "--all", "-n", namespace)
    assert fleet.returncode == 1
    header, line = fleet.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "PHASE", "READY"]
    assert line.split()[:8] == [name, "Ready", "True", "v6e", "2x4", "1", "2.314", "3.000"]
    assert line.endswith("CostCeilingBreached")
    everywhere = status_cli(kubeconfig, "-A")
    assert everywhere.returncode == 1
    assert any(row.split()[:2] == [namespace, name] for row in everywhere.stdout.splitlines())

    missing = status_cli(kubeconfig, "no-such-model", "-n", namespace)
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == f'error: DataJaxModel "no-such-model" not found in namespace "{namespace}"\n'


def test_watch_redraws_until_interrupted(
    admin_client: Any, namespace: str, operator: RunningOperator, kubeconfig: Path, tmp_path: Path
) -> None:
    cluster = Cluster(admin_client, namespace)
    doc = load_example(next(p for p in EXAMPLES if "8b" in p.name), namespace)
    name = doc["metadata"]["name"]
    screen = tmp_path / "screen.txt"
    # the pod waits for a node until uncordoned: the first screens show the model not Ready
    with cordoned(admin_client, "tpu-v6e-2x4") as uncordon, screen.open("w") as sink:
        cluster.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
        wait_for(lambda: cluster.condition(name, "Ready") == "False", what="the operator's first status")
        watcher = subprocess.Popen(
            [str(CLI), "status", name, "-n", namespace, "--watch", "0.5", "--kubeconfig", str(kubeconfig)],
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: screen.read_text().count("Every 0.5s") >= 2, timeout=60, what="two redraws")
            uncordon()
            wait_for(lambda: "OK (exit 0)" in screen.read_text(), timeout=60, what="a redraw showing Ready")
        finally:
            watcher.send_signal(signal.SIGINT)
            _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err  # the last screen's verdict
    text = screen.read_text()
    assert "ATTENTION (exit 1): not Ready" in text  # the earlier screens
    assert "Traceback" not in err
