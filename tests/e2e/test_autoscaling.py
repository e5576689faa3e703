"""spec.scaling end to end: traffic -> real sidecars -> the operator's decision -> the Deployment ->
ReplicaSet -> pods on kwok's TPU nodes -> EndpointSlices -> the sidecars the operator reads, and back.

The control plane of the session runs the real kube-scheduler, kube-controller-manager and kwok (see
harness.py): the operator's replica count reaches pods through the real controllers, and the pods'
readiness and endpoints come back through them. For each running pod the test runs its containers'
stand-ins (a vLLM-format source and the real `datajax-sidecar serve` on the pod IP's loopback address).
The offered demand is split evenly over the pods served; each one's p95 grows with its load as
p0 / (1 - load / saturation) (a queue), and a pod serves at most 95 % of its saturation rate.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import WINDOW, WINDOW_SECONDS, Served, Slice, passes_over, wait_for
from kubehelpers import RunningOperator
from vllm_source import Traffic

from datajax_devtools.localcluster import find_binary
from vllm_fixtures import scrape_text

pytestmark = pytest.mark.e2e

SATURATION = 10_000.0
"""Tokens/s one slice serves at most; with p0 = 0.5 s it serves 7,500 tokens/s at a 2 s p95."""
P0 = 0.5
SLO = 2.0
Serve = Callable[..., Served]


class Fleet(threading.Thread):
    """Containers for every pod the Deployment's controllers run, carrying their share of the demand.

    The harness fills an empty slot when a pod comes and empties it when its pod goes; this adds a slot
    for each running pod beyond the slots there are (as a node would start its containers), and splits
    the offered demand evenly over the slots that serve a pod (as the Service does)."""

    def __init__(self, model: Served, demand: float) -> None:
        super().__init__(name="fleet", daemon=True)
        self.model, self.demand = model, demand
        self.stopped = threading.Event()
        self.counts: list[int] = []
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopped.wait(0.3):
                self.sync()
        except BaseException as err:  # reported by the test, not lost in a thread
            self.failure = err

    def sync(self) -> None:
        model = self.model
        self.counts.append(model.replicas())
        model.sync_pods()
        with model._lock:
            model.unserved = {}
            running = model.running_pods()
            served = {s.pod for s in model.slices if s.pod}
            for pod, ip in sorted(running.items()):
                if pod not in served:
                    log = model.workdir / f"{model.name}-sidecar-{len(model.slices)}.log"
                    slot = Slice(scrape_text(3), model.sidecar_args, model.settings, log)
                    slot.attach(pod, ip, model.cluster)
                    model.slices.append(slot)
            serving = [s for s in model.slices if s.pod]
        share = min(self.demand / len(serving), 0.95 * SATURATION) if serving else 0.0
        for s in serving:
            s.source.set_traffic(
                Traffic(
                    prompt_tokens_per_second=share * 5 / 6,
                    generation_tokens_per_second=share / 6,
                    requests_per_second=share / 1000,
                    e2e_seconds=P0 / (1 - share / SATURATION),
                )
            )

    def stop(self) -> None:
        self.stopped.set()
        self.join(30)


def scaling_spec() -> dict[str, Any]:
    return {
        "model": {"name": "org/model", "parametersBillions": 8, "dtype": "bfloat16"},
        "tpu": {"generation": "v6e", "topology": "2x4"},
        "replicas": 1,
        "cost": {"window": WINDOW},
        "slo": {"p95LatencySeconds": SLO},
        "scaling": {"minReplicas": 1, "maxReplicas": 3, "scaleDownStabilization": WINDOW},
    }


def reasons(model: Served) -> list[str]:
    return [e.reason for e in model.events()]


def test_demand_scales_the_model_up_and_down_through_its_sidecars(
    serve: Serve, kubeconfig: Path, e2e_operator: RunningOperator
) -> None:
    model = serve("auto", scaling_spec())
    fleet = Fleet(model, demand=12_000)  # more than one slice can serve: p95 far above the SLO
    fleet.start()
    try:
        wait_for(lambda: model.replicas() >= 2, 90, "a scale-up")
        up = wait_for(
            lambda: next((e for e in model.events() if e.reason == "AutoscaledUp"), None), 10, "its Event"
        )
        assert "spec.scaling: 1 slice -> " in up.message and "tokens/s per slice at p95 2 s" in up.message
        settled = wait_for(
            lambda: (
                (model.status().get("metrics") or {}).get("p95LatencySeconds", 99) <= SLO
                and model.condition("ScalingFeasible").get("status") == "True"
                and model.status()
            ),
            90,
            "p95 under the SLO on the scaled-up fleet",
        )
        scaling = settled["scaling"]
        assert scaling["demandTokensPerSecond"] == pytest.approx(12_000, rel=0.15)
        assert scaling["sloReplicas"] <= model.replicas() <= scaling["ceilingReplicas"]
        # the Deployment controller's own count of available pods, through the real path
        assert settled["replicas"] == model.replicas() == settled["availableReplicas"]
        assert "the SLO needs at least" in model.condition("ScalingFeasible")["message"]

        fleet.demand = 1_500  # one slice serves it, and more than one breaks the $3 ceiling
        wait_for(lambda: model.replicas() == 1, 90, "the scale-down to minReplicas")
        wait_for(lambda: "AutoscaledDown" in reasons(model), 10, "its Event")
        # two windows of passes later, still one: never below minReplicas
        passes_over(e2e_operator, model, 2 * WINDOW_SECONDS, timeout=60)
        assert model.replicas() == 1 and min(fleet.counts) >= 1

        # kubectl scale on the model: the autoscaler starts again from the new count
        kubectl = [str(find_binary("kubectl")), f"--kubeconfig={kubeconfig}", "-n", model.namespace]
        done = subprocess.run(
            [*kubectl, "scale", "djm", "auto", "--replicas=3"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        wait_for(lambda: model.replicas() == 3, 30, "kubectl scale to reach the Deployment")
        scale = json.loads(
            subprocess.run(
                [*kubectl, "get", "djm", "auto", "--subresource=scale", "-o", "json"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        )
        assert scale["spec"]["replicas"] == 3
        wait_for(lambda: model.replicas() == 1, 90, "the autoscaler to take the count back down")
    finally:
        fleet.stop()
    assert fleet.failure is None, fleet.failure
