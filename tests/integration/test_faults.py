"""Faults the operator must survive and lose nothing: SIGKILL mid-reconcile, a control-plane restart,
another writer changing the children.

Each test runs `datajax-operator run` as a real process (so it can be SIGKILLed) and stops the
session's in-process operator first: two operators must never watch the same cluster.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_state import ClusterState, converged, model_doc
from kubehelpers import wait_for
from operator_process import OperatorProcess
from service_accounts import OPERATOR_RULES, service_account_kubeconfig, without
from tests.polling import wait_for_passes

from datajax_devtools.localcluster import LocalCluster

pytestmark = pytest.mark.integration

CONVERGE_SECONDS = 60.0


def _operator_without_delete(state: ClusterState, cluster: LocalCluster, tmp_path: Path) -> Path:
    """A kubeconfig of a ServiceAccount that may do everything the operator does except delete
    Deployments: its reconcile of a switch to a LeaderWorkerSet stops after the LWS is applied and
    before the Deployment is deleted and the status written, every time — mid-reconcile, on demand."""
    rules = without(OPERATOR_RULES, "deployments", ("delete",))
    return service_account_kubeconfig(state, cluster, tmp_path, "no-delete", rules)


def test_sigkill_mid_reconcile_then_restart_converges(
    state: ClusterState, namespace: str, local_cluster: LocalCluster, tmp_path: Path, solo: None
) -> None:
    log = tmp_path / "operator.log"
    admin = OperatorProcess(local_cluster.kubeconfig, log)
    admin.wait_ready()
    uid = state.create_model(namespace, model_doc("resize", namespace))["metadata"]["uid"]
    wait_for(lambda: converged(state, namespace, "resize", "Deployment"), CONVERGE_SECONDS, "Deployment")
    admin.stop()

    # Deterministic: stopped between the LeaderWorkerSet's apply and the Deployment's deletion.
    limited = OperatorProcess(_operator_without_delete(state, local_cluster, tmp_path), log)
    limited.wait_ready()
    state.patch_model_spec(namespace, "resize", {"tpu": {"topology": "4x4"}})
    wait_for(lambda: state.child(namespace, "LeaderWorkerSet", "resize"), CONVERGE_SECONDS, "the LWS")
    wait_for(lambda: "forbidden" in limited.logs().lower(), CONVERGE_SECONDS, "the refused delete")
    limited.kill()
    half = {(c.kind, c.name): c for c in state.children(namespace)}
    assert set(half) == {
        ("ConfigMap", "resize-sidecar"),
        ("Deployment", "resize"),
        ("LeaderWorkerSet", "resize"),
        ("Service", "resize"),
    }
    assert (state.model(namespace, "resize") or {})["status"]["placement"]["workload"] == "Deployment"

    restarted = OperatorProcess(local_cluster.kubeconfig, log)
    restarted.wait_ready()
    wait_for(lambda: converged(state, namespace, "resize", "LeaderWorkerSet"), CONVERGE_SECONDS, "LWS only")
    after = {(c.kind, c.name): c for c in state.children(namespace)}
    for key in (("LeaderWorkerSet", "resize"), ("Service", "resize"), ("ConfigMap", "resize-sidecar")):
        assert after[key].resource_version == half[key].resource_version, f"{key} rewritten needlessly"
        assert after[key].owners == (uid,)

    # Random: SIGKILL at any moment of switches back and forth, then one survivor converges.
    rng = random.Random(20251)
    kills = 6
    topology = "4x4"
    for _ in range(kills):
        topology = "2x4" if topology == "4x4" else "4x4"
        state.patch_model_spec(namespace, "resize", {"tpu": {"topology": topology}})
        time.sleep(rng.uniform(0.0, 1.5))
        restarted.kill()
        restarted = OperatorProcess(local_cluster.kubeconfig, log)
        restarted.wait_ready()
    final = "Deployment" if topology == "2x4" else "LeaderWorkerSet"
    wait_for(lambda: converged(state, namespace, "resize", final), CONVERGE_SECONDS, f"{final} after kills")
    settled = state.versions(namespace)
    restarted.kill()
    again = OperatorProcess(local_cluster.kubeconfig, log)
    try:
        again.wait_ready()
        wait_for(
            lambda: again.metric("datajax_operator_reconciles_total", result="unchanged") >= 1, 30, "resume"
        )
        assert again.metric("datajax_operator_reconciles_total", result="changed") == 0
        assert state.versions(namespace) == settled, "a restart after convergence rewrote objects"
    finally:
        again.stop()


def test_control_plane_restart_while_running(
    state: ClusterState, namespace: str, local_cluster: LocalCluster, tmp_path: Path, solo: None
) -> None:
    proc = OperatorProcess(local_cluster.kubeconfig, tmp_path / "operator.log")
    try:
        proc.wait_ready()
        state.create_model(namespace, model_doc("survivor", namespace))
        wait_for(
            lambda: converged(state, namespace, "survivor", "Deployment"), CONVERGE_SECONDS, "first pass"
        )

        # A change, then the API server and etcd go away before (or while) the operator handles it.
        state.patch_model_spec(namespace, "survivor", {"tpu": {"topology": "4x4"}})
        down = local_cluster.restart(etcd=True, kill=True)
        t0 = time.monotonic()
        wait_for(
            lambda: converged(state, namespace, "survivor", "LeaderWorkerSet"),
            CONVERGE_SECONDS,
            "after restart",
        )
        # And a change made after the restart, handled by the same process through its new watches.
        state.patch_model_spec(namespace, "survivor", {"tpu": {"topology": "2x4"}})
        wait_for(
            lambda: converged(state, namespace, "survivor", "Deployment"), CONVERGE_SECONDS, "after change"
        )
        print(f"control plane down/up {down:.1f} s, operator converged {time.monotonic() - t0:.1f} s later")
        assert proc.popen.poll() is None, "the operator exited instead of reconnecting"
    finally:
        proc.stop()


def _without_status(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what a write of its status subresource changes (status, resourceVersion,
    the status writer's managedFields entry): a write of anything else shows."""
    meta = {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion", "managedFields")}
    meta["managedFields"] = [m for m in obj["metadata"]["managedFields"] if m.get("subresource") != "status"]
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def test_other_writers_get_our_fields_back_and_keep_theirs(
    state: ClusterState, namespace: str, local_cluster: LocalCluster, tmp_path: Path, solo: None
) -> None:
    # A resync far beyond the test: only the watches on the children can notice the edits.
    proc = OperatorProcess(local_cluster.kubeconfig, tmp_path / "operator.log", resync_seconds=3600)
    try:
        proc.wait_ready()
        state.create_model(namespace, model_doc("contested", namespace))
        wait_for(lambda: converged(state, namespace, "contested", "Deployment"), CONVERGE_SECONDS, "children")
        deployment = state.child(namespace, "Deployment", "contested") or {}
        ours = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        service = state.child(namespace, "Service", "contested") or {}
        our_selector = service["spec"]["selector"]

        # A plain update (kubectl edit) of the Service alone: our selector value, and a label of theirs.
        status, data = state.call(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/services/contested",
            {
                "metadata": {"labels": {"example.com/team": "a"}},
                "spec": {"selector": {"app.kubernetes.io/instance": "someone-else"}},
            },
            query=[("fieldManager", "kubectl-edit")],
            content_type="application/merge-patch+json",
        )
        assert status == 200, data
        wait_for(
            lambda: (
                (state.child(namespace, "Service", "contested") or {})["spec"]["selector"] == our_selector
            ),
            30,
            "the Service's selector re-applied (a Service event, no resync)",
        )

        # Another field manager takes our container args with a forced apply, and adds an annotation.
        intruder = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "contested", "annotations": {"example.com/owner": "team-a"}},
            "spec": {"template": {"spec": {"containers": [{"name": "vllm", "args": ["--foo", "bar"]}]}}},
        }
        status, data = state.call(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/contested",
            intruder,
            query=[("fieldManager", "intruder"), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        assert status == 200, data
        wait_for(
            lambda: (
                (state.child(namespace, "Deployment", "contested") or {})["spec"]["template"]["spec"][
                    "containers"
                ][0].get("args")
                == ours
            ),
            30,
            "the container args re-applied (a Deployment event, no resync)",
        )
        dep = state.child(namespace, "Deployment", "contested") or {}
        svc = state.child(namespace, "Service", "contested") or {}
        assert dep["metadata"]["annotations"]["example.com/owner"] == "team-a"
        assert svc["metadata"]["labels"]["example.com/team"] == "a"
        managers = {m["manager"] for m in dep["metadata"]["managedFields"]}
        assert "datajax-operator" in managers

        # No tug of war: once restored, and once the Deployment controller has rolled the pods back to
        # our template (the intruder's args made a ReplicaSet of their own), nothing changes any more.
        def rolled_out() -> bool:
            dep = state.child(namespace, "Deployment", "contested") or {}
            status = dep.get("status") or {}
            done = status.get("observedGeneration") == dep["metadata"]["generation"] and all(
                status.get(k) == dep["spec"]["replicas"]
                for k in ("replicas", "updatedReplicas", "availableReplicas")
            )
            available = (state.condition(namespace, "contested", "WorkloadAvailable") or {}).get("status")
            return done and available == "True"

        wait_for(rolled_out, 60, "the rollout back to our template")

        # Settled: a whole pass that began after the rollout wrote nothing (the rollout's last status
        # figures, e.g. status.availableReplicas, land in the pass after it).
        def settled() -> bool:
            before, passes = state.versions(namespace), proc.passes(namespace, "contested")
            wait_for(lambda: proc.passes(namespace, "contested") > passes + 1, 30, "two more passes")
            return state.versions(namespace) == before

        wait_for(settled, 90, "a pass that writes nothing")
        # A harmless edit of theirs makes a Deployment event, so the operator runs a whole pass: it
        # writes nothing. An annotation is part of a Deployment's generation, so its controller writes
        # the status once more (observedGeneration), another event and pass: nothing from us either.
        restored = state.versions(namespace)
        status, data = state.call(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/contested",
            {"metadata": {"annotations": {"example.com/reviewed": "yes"}}},
            query=[("fieldManager", "kubectl-edit")],
            content_type="application/merge-patch+json",
        )
        assert status == 200, data
        generation = data["metadata"]["generation"]
        wait_for(
            lambda: (
                ((state.child(namespace, "Deployment", "contested") or {}).get("status") or {}).get(
                    "observedGeneration"
                )
                == generation
            ),
            30,
            "the Deployment controller's status for the edited generation",
        )
        wait_for_passes(lambda: proc.passes(namespace, "contested"), 2, 30, "after it")
        after = state.versions(namespace)
        assert {**after, ("Deployment", "contested"): None} == {**restored, ("Deployment", "contested"): None}
        # the Deployment is the patch's answer but for its controller's status write
        assert _without_status(state.child(namespace, "Deployment", "contested") or {}) == _without_status(
            data
        )
    finally:
        proc.stop()


def test_endpoint_slices_refused_costs_the_figures_not_the_workload(
    state: ClusterState, namespace: str, local_cluster: LocalCluster, tmp_path: Path, solo: None
) -> None:
    """RBAC without EndpointSlices: every pass meets a 403 when it looks for the sidecars. The pass goes
    on: the children are applied and the status written, MetricsAvailable=False naming the refusal."""
    rules = without(OPERATOR_RULES, "endpointslices")
    kubeconfig = service_account_kubeconfig(state, local_cluster, tmp_path, "no-slices", rules)
    proc = OperatorProcess(kubeconfig, tmp_path / "operator.log")
    try:
        proc.wait_ready()
        state.create_model(namespace, model_doc("blind", namespace))
        wait_for(lambda: converged(state, namespace, "blind", "Deployment"), CONVERGE_SECONDS, "the workload")
        metrics = state.condition(namespace, "blind", "MetricsAvailable")
        assert metrics is not None and metrics["status"] == "False", metrics
        assert metrics["reason"] == "EndpointSlicesUnreadable", metrics
        assert "HTTP 403" in metrics["message"] and "endpointslices" in metrics["message"], metrics
        cost = state.condition(namespace, "blind", "CostCeilingBreached")
        assert cost is not None and cost["status"] == "Unknown", cost
        assert proc.metric("datajax_operator_reconciles_total", result="error") == 0, proc.logs()
    finally:
        proc.stop()
