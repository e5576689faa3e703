"""spec.plan.compileGate against the real API server, the real Job controller and the real compiler.

The operator runs in-process; kube-controller-manager's Job controller makes the gate Job's pod and
counts it when it ends; kwok schedules and starts the pod on a CPU node. The test then plays the
kubelet for the gate's container: it runs the REAL compile for the request the pod carries
(`python -m datajax_runtime.compile_gate --request ... --termination-log ...` in the tpu-env of
`make tpu-env`, the runtime image's stack) and writes what the container would leave — exit 0 and the
compact verdict as its termination message — into the pod's status.

Marked tpu_stack as well as integration: it needs the tpu-env (and fails, saying how to build it,
without one), and the integration tier's fixtures (the in-process operator, namespaces), which live in
tests/integration/conftest.py. Cost: one compile that fits (Qwen2.5 1.5B shapes on v5e 2x2, ~33
CPU-seconds) and one that libtpu refuses (~12 CPU-seconds).
"""

from __future__ import annotations

import copy
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import GROUP, PLURAL, REPO, VERSION, RunningOperator, wait_for
from kubernetes import client
from tests.polling import wait_for_passes
from tests.tpu_stack.conftest import probe_env

from datajax_operator.compile_gate import find_tpu_python
from datajax_operator.plan.gate_request import GateError

pytestmark = [pytest.mark.integration, pytest.mark.tpu_stack]

GATE_LABELS = "app.kubernetes.io/component=compile-gate,app.kubernetes.io/instance=qwen-gated"
SHAPES = {"attentionHeads": 12, "kvHeads": 2, "numLayers": 28, "headDim": 128, "parametersBillions": 1.5}
FITS = {"maxModelLen": 8192, "maxNumBatchedTokens": 2048}
"""Qwen2.5 1.5B on a v5e 2x2: peak 3.50 of 15.46 GB usable per device."""
DOES_NOT_FIT = {"maxModelLen": 32768, "maxNumBatchedTokens": 32768}
"""The same with 32k-token prefill chunks: the planner's arithmetic passes it, libtpu refuses the
prefill step (16.11G of HLO temporaries on a 15.75G device)."""


def model_doc(namespace: str, sizes: dict[str, int]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataJaxModel",
        "metadata": {"name": "qwen-gated", "namespace": namespace},
        "spec": {
            "model": {
                "name": "Qwen/Qwen2.5-1.5B-Instruct",
                "dtype": "bfloat16",
                "maxModelLen": sizes["maxModelLen"],
                **SHAPES,
            },
            "tpu": {"generation": "v5e", "topology": "2x2"},
            "mesh": {"axes": ["data", "model"], "shape": [2, 2]},
            "serving": {
                "maxNumSeqs": 128,
                "chunkedPrefill": {"maxNumBatchedTokens": sizes["maxNumBatchedTokens"]},
            },
            "plan": {"compileGate": True},
        },
    }


@pytest.fixture(scope="module")
def tpu_python() -> str:
    try:
        return find_tpu_python(None)
    except GateError as err:
        pytest.fail(str(err))


class Cluster:
    def __init__(self, api_client: Any, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.ns = namespace

    def model(self) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, "qwen-gated"
        )
        return found

    def condition(self, type_: str) -> dict[str, Any] | None:
        conditions = (self.model().get("status") or {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == type_), None)

    def gate(self, reason: str) -> dict[str, Any] | None:
        found = self.condition("CompileGate")
        return found if found is not None and found["reason"] == reason else None

    def jobs(self) -> list[str]:
        return sorted(
            j.metadata.name for j in self.batch.list_namespaced_job(self.ns, label_selector=GATE_LABELS).items
        )

    def deployment(self) -> Any:
        found = self.apps.list_namespaced_deployment(
            self.ns, label_selector="app.kubernetes.io/instance=qwen-gated"
        )
        return found.items[0] if found.items else None

    def running_gate_pod(self, job: str) -> Any:
        """The Job's pod once kwok has started it (Ready: kwok's last write, so none follows ours)."""
        pods = self.core.list_namespaced_pod(
            self.ns, label_selector=f"batch.kubernetes.io/job-name={job}"
        ).items
        for pod in pods:
            ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            if pod.status.phase == "Running" and ready:
                return pod
        return None

    def play_kubelet(self, pod: Any, tpu_python: str) -> str:
        """Run the gate container's real command in the tpu-env, then end the container as the
        kubelet would: terminated, exit code, the termination-log file as its message."""
        (container,) = pod.spec.containers
        args = list(container.args)
        assert container.command == ["python3", "-m", "datajax_runtime.compile_gate"]
        with tempfile.TemporaryDirectory(prefix="gate-") as tmp:
            log = Path(tmp) / "termination-log"
            args[args.index("--termination-log") + 1] = str(log)
            done = subprocess.run(
                [tpu_python, "-m", "datajax_runtime.compile_gate", *args],
                capture_output=True,
                text=True,
                timeout=600,
                env=probe_env(REPO / "runtime_image"),
                check=False,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            message = log.read_text(encoding="utf-8")
        assert len(message.encode()) <= 4096
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        terminated = {
            "exitCode": 0,
            "reason": "Completed",
            "message": message,
            "startedAt": now,
            "finishedAt": now,
        }
        status = {
            "phase": "Succeeded",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
                {
                    "type": "ContainersReady",
                    "status": "False",
                    "reason": "PodCompleted",
                    "lastTransitionTime": now,
                },
            ],
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"terminated": terminated},
                }
            ],
        }
        self.core.patch_namespaced_pod_status(pod.metadata.name, self.ns, {"status": status})
        return message


def test_the_workload_appears_only_after_the_gate_says_it_fits_and_a_refusal_keeps_what_serves(
    operator: RunningOperator, admin_client: Any, namespace: str, tpu_python: str
) -> None:
    cluster = Cluster(admin_client, namespace)
    cluster.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, model_doc(namespace, FITS)
    )

    # 1. The gate Job runs; the pass that says so rendered no workload.
    compiling = wait_for(lambda: cluster.gate("Compiling"), 30, "CompileGate=Unknown/Compiling")
    assert compiling["status"] == "Unknown"
    (first_job,) = cluster.jobs()
    assert cluster.deployment() is None
    ready = cluster.condition("Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "CompileGateHeld")
    job = cluster.batch.read_namespaced_job(first_job, namespace)
    pod_spec = job.spec.template.spec
    assert pod_spec.node_selector is None and "google.com/tpu" not in str(pod_spec.containers[0].resources)

    # 2. The real compile fits: CompileGate=True with its figures, then the workload.
    pod = wait_for(lambda: cluster.running_gate_pod(first_job), 60, "the gate pod running on a CPU node")
    node = cluster.core.read_node(pod.spec.node_name)
    assert "google.com/tpu" not in (node.status.capacity or {})  # scheduled by the real scheduler
    cluster.play_kubelet(pod, tpu_python)
    fits = wait_for(lambda: cluster.gate("Fits"), 60, "CompileGate=True/Fits")
    assert fits["status"] == "True"
    assert "v5e:2x2" in fits["message"] and "usable" in fits["message"], fits["message"]
    deployment = wait_for(cluster.deployment, 30, "the Deployment after Fits")
    served_args = copy.deepcopy(deployment.spec.template.spec.containers[0].args)
    assert "8192" in " ".join(served_args) and "32768" not in " ".join(served_args)

    # 3. An edit whose program does not fit: a new Job for the new request (the old one deleted), and
    #    the workload already serving is kept exactly as it was, through Compiling and DoesNotFit.
    cluster.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "qwen-gated",
        {
            "spec": {
                "model": {"maxModelLen": DOES_NOT_FIT["maxModelLen"]},
                "serving": {"chunkedPrefill": {"maxNumBatchedTokens": DOES_NOT_FIT["maxNumBatchedTokens"]}},
            }
        },
    )
    wait_for(lambda: cluster.gate("Compiling"), 30, "CompileGate=Unknown/Compiling for the edit")
    (second_job,) = wait_for(
        lambda: (jobs := cluster.jobs()) and first_job not in jobs and jobs, 30, "the new gate Job alone"
    )
    pod = wait_for(lambda: cluster.running_gate_pod(second_job), 60, "the second gate pod running")
    message = cluster.play_kubelet(pod, tpu_python)
    assert '"fits":false' in message
    refused = wait_for(lambda: cluster.gate("DoesNotFit"), 60, "CompileGate=False/DoesNotFit")
    assert refused["status"] == "False"
    assert "RESOURCE_EXHAUSTED" in refused["message"] and "largest arrays per device" in refused["message"]
    wait_for_passes(lambda: operator.passes(namespace, "qwen-gated"), what="passes after DoesNotFit")
    kept = cluster.deployment()
    assert kept is not None and kept.metadata.uid == deployment.metadata.uid
    assert kept.spec.template.spec.containers[0].args == served_args  # not the refused spec
    ready = cluster.condition("Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "CompileGateHeld")

    # 4. The gate turned off: its Jobs are deleted, the condition goes, the edit is rendered.
    cluster.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "qwen-gated", {"spec": {"plan": {"compileGate": False}}}
    )
    wait_for(lambda: cluster.condition("CompileGate") is None, 30, "CompileGate gone")
    wait_for(lambda: not cluster.jobs(), 30, "the gate Jobs deleted")
    wait_for(
        lambda: "32768" in " ".join(cluster.deployment().spec.template.spec.containers[0].args),
        30,
        "the Deployment rendered for the edited spec",
    )
