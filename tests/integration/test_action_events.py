"""A cost action's Event is posted exactly once, whatever point of the pass a crash interrupts
(issue 19, item 7): run against the real API server with the reconcile pass itself, the crash being
an exception raised around the status write (the operator process dying there).

The Event is named after the decision recorded in status (generation, the run it acted on, the
change), so the pass that re-decides the same ScaleDown after the crash posts under the same name,
which the API server refuses as a duplicate. Before: the Event was posted after the status write
(a crash just after the write lost it), with a generated name (posted before the write, a crash
in between would repeat it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import EXAMPLES, GROUP, PLURAL, VERSION, load_example
from kubernetes import client

from datajax_operator.kube import Kube
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.reconcile import reconcile
from datajax_operator.status.observations import SidecarFigures, SidecarScrape

pytestmark = pytest.mark.integration

DEAR = SidecarFigures(
    usd_per_hour=21.6,
    prompt_tokens_per_second=400.0,
    generation_tokens_per_second=100.0,
    prefix_cache_hit_ratio=0.5,
    p95_e2e_latency_seconds=0.3,
    p95_ttft_seconds=0.03,
    window_seconds=60.0,
    upstream_up=True,
)  # $12/Mtok against the $3 ceiling
SIDECARS = tuple(SidecarScrape(f"198.51.100.{i}:9400", DEAR) for i in (2, 3, 4))


class Killed(BaseException):
    """The operator process dying: nothing after it in the pass runs."""


class DiesAtStatusWrite(Kube):
    """The real client, except that the process dies just before or just after the status write."""

    def __init__(self, kube: Kube, *, after: bool) -> None:
        super().__init__(kube._api)
        self.after = after

    def apply_status(self, kind: Any, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        if self.after:
            super().apply_status(kind, namespace, name, status)
        raise Killed


@pytest.mark.parametrize("after", [False, True], ids=["killed-before-status-write", "killed-after-it"])
def test_one_scaled_down_event_across_a_crash(
    kubeconfig: Path, admin_client: Any, namespace: str, solo: None, after: bool
) -> None:
    doc = load_example(next(p for p in EXAMPLES if "8b" in p.name), namespace)
    doc["spec"]["replicas"] = 3
    doc["spec"]["cost"] = {"window": "10s", "action": "ScaleDown"}
    name = doc["metadata"]["name"]
    client.CustomObjectsApi(admin_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, doc
    )
    kube = Kube.connect(str(kubeconfig))
    config = OperatorConfig()
    start = datetime.now(UTC).replace(microsecond=0)
    apps = client.AppsV1Api(admin_client)

    def replicas() -> int:
        return int(apps.read_namespaced_deployment(name, namespace).spec.replicas)

    try:
        reconcile(kube, namespace, name, config, start, sidecars=SIDECARS)
        assert replicas() == 3  # the Above run starts
        with pytest.raises(Killed):  # a window later: 3 -> 2 applied, then the crash
            reconcile(
                DiesAtStatusWrite(kube, after=after), namespace, name, config, start + timedelta(seconds=10),
                sidecars=SIDECARS,
            )  # fmt: skip
        assert replicas() == 2
        # a new operator process: no cache, no memory; only the cluster's state
        reconcile(kube, namespace, name, config, start + timedelta(seconds=12), sidecars=SIDECARS)
        reconcile(kube, namespace, name, config, start + timedelta(seconds=14), sidecars=SIDECARS)
        assert replicas() == 2  # at most one ScaleDown per window
    finally:
        kube.close()
    model = client.CustomObjectsApi(admin_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    assert model["status"]["costEvaluation"]["replicas"] == 2
    events = client.CoreV1Api(admin_client).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    scaled = [e.message for e in events.items if e.reason == "ScaledDown"]
    assert len(scaled) == 1, scaled
    assert "3 -> 2" in scaled[0]
