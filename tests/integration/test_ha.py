"""Two operator replicas with kopf peering: one acts, the other stands by and takes over when it dies.

kopf peering is not an election: replicas of equal priority pause each other. The standby runs with a
lower ``--priority``; when the active replica is SIGKILLed its peering record stays until it is
``--peering-lifetime`` old, so the takeover is bounded by that lifetime (plus the standby's watch
and resume). The peering CRDs are the chart's own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_state import ClusterState, converged, model_doc
from kubehelpers import REPO, cordoned, wait_for
from operator_process import OperatorProcess
from tests.polling import wait_for_passes

from datajax_devtools.localcluster import LocalCluster, find_binary
from datajax_operator.peering import priority_from_name

pytestmark = pytest.mark.integration

CHART = REPO / "charts" / "datajax-operator"
PEERING_CRDS = CHART / "crds" / "kopf-peering.kopf.dev.yaml"
LIFETIME = 8
RESYNC = 2.0
TAKEOVER_BOUND = LIFETIME + 20.0
"""Seconds from SIGKILL of the active replica to the standby having handled a new change."""


def _events_by_reason(state: ClusterState, ns: str) -> Counter[tuple[str, str]]:
    return Counter(
        (e["involvedObject"]["name"], e["reason"])
        for e in state.events(ns)
        if e.get("source", {}).get("component") == "datajax-operator"
    )


def test_one_replica_acts_and_the_standby_takes_over(
    state: ClusterState, namespace: str, local_cluster: LocalCluster, tmp_path: Path, solo: None
) -> None:
    local_cluster.install_crds(list(yaml.safe_load_all(PEERING_CRDS.read_text())))
    peering = f"ha-{uuid.uuid4().hex[:6]}"
    status, data = state.call(
        "POST",
        "/apis/kopf.dev/v1/clusterkopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": peering}},
    )
    assert status == 201, data

    def replica(instance: str, priority: int) -> OperatorProcess:
        return OperatorProcess(
            local_cluster.kubeconfig,
            tmp_path / f"{instance}.log",
            "--peering",
            peering,
            "--priority",
            str(priority),
            "--peering-lifetime",
            str(LIFETIME),
            resync_seconds=RESYNC,
            instance=instance,
        )

    def peers() -> int:
        found = state.get(f"/apis/kopf.dev/v1/clusterkopfpeerings/{peering}") or {}
        return len(found.get("status") or {})

    # One after the other: two replicas that start at the same instant both see an empty peering and
    # both act until their keep-alives meet (kopf peering has no lock). That window is not under test.
    active = replica("active", 100)
    survivors: list[OperatorProcess] = []
    # The models serve, which is worth one Ready Event each (pods waiting for a node are no news worth
    # an Event); the pool ha-0 moves to holds its pods back, so each condition makes at most one
    # transition and an Event posted twice can only be an action taken twice (ha-0 serving again on
    # 4x4 would be a second, real, Ready).
    hold = contextlib.ExitStack()
    hold.enter_context(cordoned(state.api, "tpu-v6e-4x4"))
    try:
        active.wait_ready()
        wait_for(lambda: peers() == 1, 30, "the active replica in the peering")
        standby = replica("standby", 10)
        survivors.append(standby)
        standby.wait_ready()
        wait_for(lambda: peers() == 2, 30, "both replicas in the peering")
        names = [f"ha-{i}" for i in range(3)]
        for name in names:
            state.create_model(namespace, model_doc(name, namespace))
        for name in names:
            wait_for(lambda n=name: converged(state, namespace, n, "Deployment"), 60, f"{name} converged")
            wait_for(
                lambda n=name: (state.condition(namespace, n, "Ready") or {}).get("status") == "True",
                60,
                f"{name} Ready",
            )

        # Only the active replica reconciles, over several resync periods; settled once a resync
        # writes nothing (the Deployment controller's last status writes land after Ready).
        def resync_writes_nothing() -> dict[tuple[str, str], str] | None:
            before, seen = state.versions(namespace), active.reconciles()
            wait_for(lambda: active.reconciles() >= seen + 2 * len(names), 30, "active resyncs")
            return before if state.versions(namespace) == before else None

        settled = wait_for(resync_writes_nothing, 60, "a resync that writes nothing")
        assert standby.reconciles() == 0, "the standby acted beside the active replica"
        events = _events_by_reason(state, namespace)
        assert set(events) == {(name, "Ready") for name in names}, events
        assert max(events.values()) == 1, f"an action was taken twice: {events}"

        # SIGKILL the active replica; change a model at once: the standby must handle it.
        active.kill()
        t0 = time.monotonic()
        state.patch_model_spec(namespace, names[0], {"tpu": {"topology": "4x4"}})
        wait_for(lambda: converged(state, namespace, names[0], "LeaderWorkerSet"), TAKEOVER_BOUND, "takeover")
        takeover = time.monotonic() - t0
        print(
            f"standby took over and converged {takeover:.1f} s after SIGKILL (peering lifetime {LIFETIME} s)"
        )
        assert standby.reconciles() > 0
        # The unchanged models were resumed without a write; nothing was done twice.
        after = state.versions(namespace)
        for name in names[1:]:
            for kind in ("DataJaxModel", "Deployment", "Service"):
                assert after[(kind, name)] == settled[(kind, name)], f"{kind}/{name} rewritten on takeover"
        events = _events_by_reason(state, namespace)
        assert max(events.values()) == 1, f"an action was taken twice: {events}"
        # the standby's own news: ha-0's slices on the held pool do not serve
        assert {(names[0], "ReplicasUnavailable"), (names[0], "WorkloadUnavailable")} <= set(events), events

        # The higher-priority replica comes back: the standby pauses, its resync included.
        back = replica("active-again", 100)
        survivors.append(back)
        back.wait_ready()
        wait_for(lambda: "Pausing operations in favour of" in standby.logs(), 3 * LIFETIME, "standby paused")
        # a pass already in flight at the pause may finish: by the time the returned replica completed a
        # pass of every model, it has
        for name in names:
            wait_for_passes(
                lambda n=name: back.passes(namespace, n), 1, 30, f"of {name} by the returned replica"
            )
        paused_at = standby.reconciles()
        for name in names:
            wait_for_passes(
                lambda n=name: back.passes(namespace, n), 2, 30, f"of {name} by the returned replica"
            )
        assert standby.reconciles() == paused_at, "a paused standby kept reconciling (its resync)"
    finally:
        hold.close()
        for proc in (active, *survivors):
            proc.stop()
        state.call("DELETE", f"/apis/kopf.dev/v1/clusterkopfpeerings/{peering}")


def _chart(tmp_path: Path, *sets: str) -> list[dict[str, Any]]:
    """`helm template` of the chart as a user runs it (no --kube-version: helm's own default)."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(tmp_path / var.lower())
    argv = [str(find_binary("helm")), "template", "djx", str(CHART), "-n", "datajax-system"]
    argv += [a for s in sets for a in ("--set-json", s)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _in_cluster_args(args: list[str], config: Path) -> list[str]:
    """The chart's operator arguments for a process on this machine: its own config file path, and
    the ports and log format OperatorProcess sets for each process."""
    out = []
    for arg in args[1:]:  # "run" is OperatorProcess's
        if arg.startswith(("--liveness-port=", "--metrics-port=", "--log-format=")):
            continue
        out.append(f"--config={config}" if arg.startswith("--config=") else arg)
    return out


def _paused(proc: OperatorProcess) -> bool:
    """Whether kopf peering pauses the replica: its last word on it is a pause, or it never resumed
    (kopf logs the pause of a replica that met a higher peer before it ever acted, not at all)."""
    logs = proc.logs()
    return logs.rfind("Pausing operations in favour of") >= logs.rfind("Resuming operations after the pause")


def test_a_two_replica_install_fails_over(
    state: ClusterState, namespace: str, local_cluster: LocalCluster, tmp_path: Path, solo: None
) -> None:
    """The chart with replicas: 2 and peering, its pods' arguments as rendered, each pod with its own
    name: one replica acts, the other stands by; SIGKILL the active one and the standby converges the
    next change. With one priority for both (the chart before), both pause and nothing converges."""
    local_cluster.install_crds(list(yaml.safe_load_all(PEERING_CRDS.read_text())))
    peering = f"ha2-{uuid.uuid4().hex[:6]}"
    docs = _chart(
        tmp_path,
        "replicas=2",
        "leaderElection.enabled=true",
        f'leaderElection.peeringName="{peering}"',
        f"leaderElection.lifetimeSeconds={LIFETIME}",
    )
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 2
    [peering_object] = [d for d in docs if d["kind"] == "ClusterKopfPeering"]
    status, data = state.call("POST", "/apis/kopf.dev/v1/clusterkopfpeerings", peering_object)
    assert status == 201, data
    [config_map] = [d for d in docs if d["kind"] == "ConfigMap" and "config.yaml" in d.get("data", {})]
    config = tmp_path / "config.yaml"
    config.write_text(config_map["data"]["config.yaml"])
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    args = _in_cluster_args(container["args"], config)

    # Two pods of one ReplicaSet, started together as the Deployment starts them.
    pods = [f"djx-datajax-operator-5d8f7c9b4-{suffix}" for suffix in ("q2xkz", "wm7p4")]
    replicas = {
        pod: OperatorProcess(
            local_cluster.kubeconfig, tmp_path / f"{pod}.log", *args, resync_seconds=RESYNC, instance=pod
        )
        for pod in pods
    }
    try:
        for proc in replicas.values():
            proc.wait_ready()

        def peers() -> dict[str, Any]:
            found: dict[str, Any] = (state.get(f"/apis/kopf.dev/v1/clusterkopfpeerings/{peering}") or {}).get(
                "status"
            ) or {}
            return found

        wait_for(lambda: len(peers()) == 2, 30, "both replicas in the peering")
        priorities = {info["priority"] for info in peers().values()}
        assert len(priorities) == 2, f"the replicas share a priority: {peers()}"
        active_pod = max(pods, key=priority_from_name)
        active, standby = replicas[active_pod], next(p for n, p in replicas.items() if n != active_pod)
        # Until it meets the other replica, the first one up is alone and acts (on whatever models
        # the cluster holds, e.g. an earlier test's); this test's models come once it is settled.
        wait_for(lambda: _paused(standby), 30, "the standby paused")

        names = [f"ha2-{i}" for i in range(2)]
        for name in names:
            state.create_model(namespace, model_doc(name, namespace))
        for name in names:
            wait_for(lambda n=name: converged(state, namespace, n, "Deployment"), 60, f"{name} converged")
        for name in names:
            wait_for_passes(
                lambda n=name: active.passes(namespace, n), 2, 30, f"of {name} by the active replica"
            )
        assert all(standby.passes(namespace, n) == 0 for n in names), (
            "the standby acted beside the active one"
        )

        active.kill()
        t0 = time.monotonic()
        state.patch_model_spec(namespace, names[0], {"tpu": {"topology": "4x4"}})
        wait_for(lambda: converged(state, namespace, names[0], "LeaderWorkerSet"), TAKEOVER_BOUND, "failover")
        print(f"two-replica install: the standby converged {time.monotonic() - t0:.1f} s after SIGKILL")
        assert standby.passes(namespace, names[0]) > 0
    finally:
        for proc in replicas.values():
            proc.stop()
        state.call("DELETE", f"/apis/kopf.dev/v1/clusterkopfpeerings/{peering}")
