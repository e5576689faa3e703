"""Two peered operator processes and a model over its cost ceiling: one ScaleDown per window, also
across a failover.

How the operators reach the sidecars. The sidecars are real `datajax-sidecar serve` processes on the
loopback address the control plane maps each pod IP to (harness.py, ``LocalCluster.dial_map``). The
operators must be processes (one is SIGKILLed, and kopf peering needs two identities), so the
in-process dial map is passed by the demo's entry point (``datajax_devtools.demo.operator_process
--dial A=B ... run ...``), which parses the real `run` command line and adds the map. Rejected:
adding 198.51.100.N to ``lo`` (needs CAP_NET_ADMIN, which CI does not have, and changes the host's
network for every other process); two operators in threads of this process (a thread cannot be
SIGKILLed: a graceful stop says goodbye to the peering, which hides exactly the crash under test).

The property. ``status.costEvaluation.scaledDownAt`` is the memory of the last ScaleDown; the
replicas rendered derive from it and the spec alone, so a standby that takes over mid-breach must
not remove a second slice until a whole window after the first, and must remove it then (the breach
goes on). The model runs 3 replicas so that a second ScaleDown inside the window would show (2 -> 1
is allowed; with 2 replicas the floor of 1 would hide a double action).
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Served, dial, wait_for
from kubehelpers import REPO, Operators
from kubernetes import client
from operator_process import OperatorProcess
from test_cost_enforcement import DEAR, spec
from tests.polling import wait_for_passes

from datajax_devtools.localcluster import LocalCluster

pytestmark = pytest.mark.e2e

PEERING_CRDS = REPO / "charts" / "datajax-operator" / "crds" / "kopf-peering.kopf.dev.yaml"
LIFETIME = 5
WINDOW_SECONDS = 20.0
"""Longer than a takeover (the peering lifetime plus a watch restart), so the standby acts inside
the window of the first ScaleDown."""


class ReplicaLog(threading.Thread):
    """Records the Deployment's spec.replicas every 0.2 s: (monotonic time, replicas) on change."""

    def __init__(self, model: Served) -> None:
        super().__init__(name="replicas", daemon=True)
        self.model = model
        self.changes: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            replicas = self.model.replicas()
            if not self.changes or self.changes[-1][1] != replicas:
                self.changes.append((time.monotonic(), replicas))


def scaled_down(model: Served) -> list[str]:
    return [e.message for e in model.events() if e.reason == "ScaledDown"]


def test_one_scale_down_per_window_across_a_failover(
    admin_client: Any, kubeconfig: Path, local_cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    Operators.shared(kubeconfig).stop()  # the session's in-process operator would act beside them
    launcher = (
        sys.executable,
        "-m",
        "datajax_devtools.demo.operator_process",
        *(f"--dial={k}={v}" for k, v in dial(local_cluster).items()),
    )
    local_cluster.install_crds(list(yaml.safe_load_all(PEERING_CRDS.read_text())))
    custom = client.CustomObjectsApi(admin_client)
    peering = f"ha-{uuid.uuid4().hex[:6]}"
    custom.create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": peering}},
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"sidecarInterval": "1s", "observeInterval": "1s"}))

    def replica(instance: str, priority: int) -> OperatorProcess:
        return OperatorProcess(
            kubeconfig,
            tmp_path / f"{instance}.log",
            "--namespace",
            namespace,
            "--config",
            str(config),
            "--peering",
            peering,
            "--priority",
            str(priority),
            "--peering-lifetime",
            str(LIFETIME),
            resync_seconds=2.0,
            observe_interval=None,  # the config's 1s
            instance=instance,
            command=launcher,
        )

    def peers() -> int:
        found = custom.get_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", peering)
        return len(found.get("status") or {})

    active = replica("active", 100)
    processes = [active]
    served: list[Served] = []
    log: ReplicaLog | None = None
    try:
        active.wait_ready()
        wait_for(lambda: peers() == 1, 30, "the active replica in the peering")
        standby = replica("standby", 10)
        processes.append(standby)
        standby.wait_ready()
        wait_for(lambda: peers() == 2, 30, "both replicas in the peering")

        model = Served(
            admin_client,
            local_cluster,
            namespace,
            "ha-dear",
            spec(replicas=3, cost={"action": "ScaleDown", "window": f"{WINDOW_SECONDS:.0f}s"}),
            tmp_path,
        )
        served.append(model)
        slices = model.start_slices(3)
        for s in slices:
            s.traffic(DEAR)  # $12/Mtok against the $3 ceiling, from the start
        log = ReplicaLog(model)
        log.start()

        wait_for(lambda: model.replicas() == 2, 3 * WINDOW_SECONDS, "the first ScaleDown")
        first = time.monotonic()
        [message] = wait_for(lambda: scaled_down(model), 5, "the ScaledDown Event")  # posted after the apply
        assert "3 -> 2" in message
        assert standby.reconciles() == 0, "the standby acted beside the active replica"

        # mid-breach, SIGKILL the replica that scaled down: no goodbye, its peering record lingers
        active.kill()
        evaluation = model.status()["costEvaluation"]
        assert evaluation["replicas"] == 2 and evaluation["scaledDownAt"], evaluation
        wait_for(lambda: standby.reconciles() > 0, WINDOW_SECONDS, "the standby to take over")
        takeover = time.monotonic() - first
        assert takeover < WINDOW_SECONDS - 5, f"takeover took {takeover:.1f} s: no failover inside the window"
        observed = standby.reconciles()
        wait_for(lambda: standby.reconciles() >= observed + 2, 10, "the standby observing")

        # the breach goes on: the standby removes the second slice, a whole window after the first
        wait_for(lambda: model.replicas() == 1, 2 * WINDOW_SECONDS, "the second ScaleDown, by the standby")
        second = time.monotonic()
        wait_for(lambda: log.changes[-1][1] == 1, 5, "the replica log to see it")
        log.stopped.set()
        log.join(5)
        assert [r for _, r in log.changes] == [3, 2, 1], log.changes
        assert second - first >= WINDOW_SECONDS - 1.5, f"two ScaleDowns {second - first:.1f} s apart"
        messages = wait_for(
            lambda: len(scaled_down(model)) >= 2 and scaled_down(model), 5, "the second Event"
        )
        # a duplicate Event would come from a later pass: two whole ones have had the chance
        wait_for_passes(lambda: standby.passes(namespace, model.name), 2, 10, "of the model by the standby")
        messages = scaled_down(model)
        assert len(messages) == 2, messages  # the API lists Events by name, not by time
        assert sorted("3 -> 2" in m for m in messages) == [False, True], messages
        assert sorted("2 -> 1" in m for m in messages) == [False, True], messages
        print(
            f"takeover {takeover:.1f} s after the first ScaleDown (peering lifetime {LIFETIME} s); "
            f"second ScaleDown {second - first:.1f} s after the first (window {WINDOW_SECONDS:.0f} s)"
        )
        for proc in processes:
            assert "Traceback" not in proc.logs(), proc.logs()[-3000:]
    finally:
        if log is not None:
            log.stopped.set()
        for proc in processes:
            proc.stop()
        for done in served:
            done.close()
