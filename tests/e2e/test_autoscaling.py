"""spec.scaling end to end: traffic -> real sidecars -> the operator's decision -> the Deployment, and back.

The harness of harness.py, plus a fleet that follows the Deployment: as its controllers and kubelets
would, it runs one slice (a vLLM-format source and a real `datajax-sidecar serve`) per replica the
operator asks for, lists them in the Service's EndpointSlice and writes the Deployment's status once
they listen. The offered demand is split evenly over the slices; each slice's p95 grows with its load
as p0 / (1 - load / saturation) (a queue), and a slice serves at most 95 % of its saturation rate.

Pending: the same through the real kube-scheduler, kube-controller-manager and kwok nodes (the
Deployment -> ReplicaSet -> pods path) once the local control plane runs them (issue 16).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import WINDOW, Served, Slice, endpoint_slice, wait_for
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
    """The Deployment's pods on loopback, one slice per replica, carrying their share of the demand."""

    def __init__(self, model: Served, demand: float) -> None:
        super().__init__(name="fleet", daemon=True)
        self.model, self.demand = model, demand
        self.stopped = threading.Event()
        self.counts: list[int] = []
        self.failure: BaseException | None = None
        self._listed = False

    def run(self) -> None:
        try:
            while not self.stopped.wait(0.3):
                self.sync()
        except BaseException as err:  # reported by the test, not lost in a thread
            self.failure = err

    def sync(self) -> None:
        wanted = self.model.replicas()
        self.counts.append(wanted)
        slices = self.model.slices
        while len(slices) < wanted:
            log = self.model.workdir / f"{self.model.name}-sidecar-{len(slices)}.log"
            slices.append(Slice(scrape_text(3), self.model.sidecar_args, self.model.settings, log))
        while len(slices) > wanted:
            slices.pop().stop()
        share = min(self.demand / len(slices), 0.95 * SATURATION) if slices else 0.0
        for s in slices:
            s.source.set_traffic(
                Traffic(
                    prompt_tokens_per_second=share * 5 / 6,
                    generation_tokens_per_second=share / 6,
                    requests_per_second=share / 1000,
                    e2e_seconds=P0 / (1 - share / SATURATION),
                )
            )
        self._list(slices)
        self._available(len(slices))

    def _list(self, slices: list[Slice]) -> None:
        body = endpoint_slice(self.model.namespace, self.model.name, [s.endpoint_address for s in slices])
        if self._listed:
            self.model.discovery.replace_namespaced_endpoint_slice(
                body["metadata"]["name"], self.model.namespace, body
            )
        else:
            self.model.discovery.create_namespaced_endpoint_slice(self.model.namespace, body)
            self._listed = True

    def _available(self, count: int) -> None:
        deployment = self.model.deployment()
        assert deployment is not None
        status = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": count,
            "readyReplicas": count,
            "availableReplicas": count,
        }
        self.model.apps.patch_namespaced_deployment_status(
            self.model.name, self.model.namespace, {"status": status}
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


def test_demand_scales_the_model_up_and_down_through_its_sidecars(serve: Serve, kubeconfig: Path) -> None:
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
        assert settled["replicas"] == model.replicas() == settled["availableReplicas"]
        assert "the SLO needs at least" in model.condition("ScalingFeasible")["message"]

        fleet.demand = 1_500  # one slice serves it, and more than one breaks the $3 ceiling
        wait_for(lambda: model.replicas() == 1, 90, "the scale-down to minReplicas")
        wait_for(lambda: "AutoscaledDown" in reasons(model), 10, "its Event")
        # two windows later, still one: never below minReplicas
        seen = len(fleet.counts)
        wait_for(lambda: len(fleet.counts) > seen + 2 * 6 / 0.3, 60, "two more windows of the fleet")
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
