"""Traffic -> sidecar figures -> status.metrics -> conditions -> cost action, end to end.

The real API server, the operator in-process (observe interval 1 s), real `datajax-sidecar serve`
processes on 127.0.0.N:9400 started with the arguments the operator rendered, vLLM-format sources
whose traffic each test sets, and the cost settings reaching the sidecars through the rendered
ConfigMap (see harness.py). Windows are 6 s; every wait polls with a deadline.

Prices: v6e 2x4 on demand, 8 chips x $2.70 = $21.60/h per slice; at the default $3/Mtok ceiling
the break-even rate is 2,000 tokens/s per slice. CHEAP traffic (5,000 tokens/s) costs $1.20/Mtok,
DEAR traffic (500 tokens/s) $12/Mtok.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from harness import OBSERVE_SECONDS, WINDOW, WINDOW_SECONDS, Served, Slice, passes_over, wait_for
from kubehelpers import RunningOperator
from vllm_source import Traffic

from datajax_devtools.localcluster import find_binary
from datajax_operator.status.writes import FIGURE_TOLERANCE

pytestmark = pytest.mark.e2e

CHEAP = Traffic(4000, 1000, requests_per_second=20, prefix_hit_ratio=0.6, e2e_seconds=0.4, ttft_seconds=0.03)
DEAR = Traffic(400, 100, requests_per_second=2, prefix_hit_ratio=0.2, e2e_seconds=0.9, ttft_seconds=0.2)
Serve = Callable[..., Served]


def spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"name": "org/model"},
        "tpu": {"generation": "v6e", "topology": "2x4"},
        "cost": {"window": WINDOW},
    }
    for key, value in changes.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key in base else value
    return base


def value(figures: dict[Any, float], name: str, **labels: str) -> float:
    return figures[(name, tuple(sorted(labels.items())))]


def parse_time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def mtok_in(message: str) -> float:
    """The $/Mtok figure a condition or Event message states."""
    found = re.search(r"\$([0-9.]+)/Mtok \(", message)
    assert found is not None, message
    return float(found.group(1))


def sidecar_cost(s: Slice) -> float:
    return value(s.figures(), "datajax_cost_usd_per_million_tokens", basis="total")


def settled(s: Slice) -> bool:
    """The sidecar's window holds the current traffic only (older scrapes have aged out)."""
    fresh = time.monotonic() - s.traffic_since >= WINDOW_SECONDS + 1.5
    return fresh and value(s.figures(), "datajax_window_seconds") >= WINDOW_SECONDS - 1.5


def test_steady_traffic_status_agrees_with_the_sidecar_and_kubectl_shows_it(
    serve: Serve, kubeconfig: Path
) -> None:
    model = serve("steady", spec(slo={"p95LatencySeconds": 2.0}))
    [one] = model.start_slices(1)
    one.traffic(CHEAP)
    wait_for(lambda: settled(one), 30, "the sidecar's window to fill")

    def agrees() -> bool:
        """The status's figures are those of the sidecar, within the write tolerance: the operator
        rewrites them when one moves past FIGURE_TOLERANCE, else once per cost window."""
        metrics = model.status().get("metrics") or {}
        own = one.figures()
        tokens = value(own, "datajax_tokens_per_second", kind="prompt") + value(
            own, "datajax_tokens_per_second", kind="generation"
        )
        near = {"rel": FIGURE_TOLERANCE, "abs": 2e-3}
        return bool(metrics) and all(
            (
                metrics.get("costUSDPerMillionTokens")
                == pytest.approx(value(own, "datajax_cost_usd_per_million_tokens", basis="total"), **near),
                metrics.get("tokensPerSecond") == pytest.approx(tokens, **near),
                metrics.get("costUSDPerHour") == pytest.approx(value(own, "datajax_cost_usd_per_hour")),
                metrics.get("breakEvenTokensPerSecond")
                == pytest.approx(value(own, "datajax_breakeven_tokens_per_second")),
                metrics.get("p95LatencySeconds")
                == pytest.approx(value(own, "datajax_latency_p95_seconds", kind="e2e"), **near),
                metrics.get("p95TTFTSeconds")
                == pytest.approx(value(own, "datajax_latency_p95_seconds", kind="ttft"), **near),
                metrics.get("prefixCacheHitRatio")
                == pytest.approx(value(own, "datajax_prefix_cache_hit_ratio"), **near),
            )
        )

    wait_for(agrees, 20, "status.metrics to agree with the sidecar's own figures")
    metrics = model.status()["metrics"]
    # The sidecar stamps a scrape before sending it and the source (a thread of this process, which
    # also runs the operator) renders it when it gets the GIL, so on a busy machine the rates carry
    # some jitter at each window end: the figures agree with the sidecar's tightly (above) and with
    # the traffic that was set to a few per cent.
    assert metrics["costUSDPerMillionTokens"] == pytest.approx(1.2, rel=0.05 + FIGURE_TOLERANCE)
    assert metrics["prefixCacheHitRatio"] == pytest.approx(0.6, rel=FIGURE_TOLERANCE)
    assert model.condition("MetricsAvailable")["status"] == "True"
    under = wait_for(
        lambda: (
            model.condition("CostCeilingBreached").get("status") == "False"
            and model.condition("CostCeilingBreached")
        ),
        WINDOW_SECONDS + 5,
        "CostCeilingBreached=False after a window under the ceiling",
    )
    assert under["reason"] == "UnderCeiling", under
    # the figure in the message: $1.20/Mtok, within the few per cent the test's own clock drifts
    shown = float(re.search(r"\$([0-9.]+)/Mtok", under["message"]).group(1))
    assert shown == pytest.approx(1.20, rel=0.05), under["message"]
    assert model.condition("LatencySLOBreached")["reason"] in ("Evaluating", "WithinSLO")

    # the settings reached the sidecar through the rendered ConfigMap (no flag carries them)
    assert "--ceiling" not in model.sidecar_args and "--settings" in model.sidecar_args
    assert value(one.figures(), "datajax_latency_slo_seconds") == 2.0
    assert value(one.figures(), "datajax_window_seconds") <= WINDOW_SECONDS + 0.5

    # kubectl's printer columns read like a dashboard: live $/Mtok, p95 and prefix-hit figures
    done = subprocess.run(
        [str(find_binary("kubectl")), f"--kubeconfig={kubeconfig}", "-n", model.namespace, "get", "djm"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    header, row = done.stdout.splitlines()[:2]
    columns = dict(zip(header.split(), row.split(), strict=True))
    assert columns["NAME"] == "steady" and columns["TPU"] == "v6e" and columns["CEILING"] == "3"
    assert float(columns["$/MTOK"]) == pytest.approx(1.2, rel=0.05)
    assert float(columns["P95"]) == pytest.approx(metrics["p95LatencySeconds"], abs=1e-3)
    assert float(columns["PREFIXHIT"]) == pytest.approx(0.6, abs=1e-3)


def _breach(model: Served, slices: list[Slice]) -> tuple[dict[str, Any], float]:
    """Push every slice to DEAR traffic; the breach condition once it turns True, and how long after
    the sidecars' own $/Mtok went above the ceiling."""
    for s in slices:
        s.traffic(DEAR)
    wait_for(lambda: all(sidecar_cost(s) > 3.0 for s in slices), 3 * WINDOW_SECONDS, "the sidecars above")
    above_at = datetime.now(UTC)
    breached = wait_for(
        lambda: (
            model.condition("CostCeilingBreached").get("status") == "True"
            and model.condition("CostCeilingBreached")
        ),
        3 * WINDOW_SECONDS,
        "CostCeilingBreached=True",
    )
    delay = (parse_time(breached["lastTransitionTime"]) - above_at).total_seconds()
    return breached, delay


def test_scale_down_on_a_breach_and_back_up_when_it_clears(
    serve: Serve, e2e_operator: RunningOperator
) -> None:
    model = serve("shrink", spec(replicas=2, cost={"action": "ScaleDown"}))
    slices = model.start_slices(2)
    for s in slices:
        s.traffic(CHEAP)
    wait_for(
        lambda: model.condition("CostCeilingBreached").get("status") == "False",
        3 * WINDOW_SECONDS,
        "a window under the ceiling",
    )
    assert model.replicas() == 2

    breached, delay = _breach(model, slices)
    # within one window plus one interval of the measured cost going above (1 s: whole-second times)
    assert delay <= WINDOW_SECONDS + OBSERVE_SECONDS + 1.0, delay
    assert breached["reason"] == "CeilingExceeded"
    assert mtok_in(breached["message"]) == pytest.approx(12.0, rel=0.1)
    wait_for(lambda: model.replicas() == 1, 5, "the workload to lose a replica")
    assert model.model()["spec"]["replicas"] == 2  # the user's spec is never edited
    events = model.events()
    warning = next(e for e in events if e.reason == "CeilingExceeded")
    assert warning.type == "Warning" and mtok_in(warning.message) == pytest.approx(12.0, rel=0.1)
    # judged on both slices (the condition's message moves on with the remaining one: the ReplicaSet
    # controller deletes the pod and the EndpointSlice controller drops it at once)
    assert "tokens/s from 2 slice(s) costing $43.20/h" in warning.message
    assert "break-even 4000.0" in warning.message
    assert any(e.reason == "ScaledDown" and "2 -> 1" in e.message for e in events)
    passes_over(e2e_operator, model, WINDOW_SECONDS)  # a whole cost window of passes
    assert model.replicas() == 1  # never below one

    for s in slices:
        s.traffic(CHEAP)
    cleared = wait_for(
        lambda: (
            model.condition("CostCeilingBreached").get("status") == "False"
            and model.condition("CostCeilingBreached")
        ),
        3 * WINDOW_SECONDS,
        "CostCeilingBreached=False",
    )
    assert cleared["reason"] == "UnderCeiling"
    wait_for(lambda: model.replicas() == 2, 5, "the replicas restored")
    assert any(e.reason == "ScaledUp" for e in model.events())


def test_suspend_scales_to_zero_until_the_spec_changes(serve: Serve, e2e_operator: RunningOperator) -> None:
    model = serve("halt", spec(cost={"action": "Suspend"}))
    [one] = model.start_slices(1)
    one.traffic(CHEAP)
    wait_for(lambda: settled(one), 30, "a full window")
    _, delay = _breach(model, [one])
    assert delay <= WINDOW_SECONDS + OBSERVE_SECONDS + 1.0, delay
    suspended = wait_for(
        lambda: (
            model.condition("CostCeilingBreached").get("reason") == "Suspended"
            and model.condition("CostCeilingBreached")
        ),
        5,
        "the suspension",
    )
    assert "To resume, change anything in the spec" in suspended["message"]
    wait_for(lambda: model.replicas() == 0, 5, "the workload at 0")
    assert model.status()["phase"] == "Suspended"
    assert any(e.reason == "Suspended" and e.type == "Warning" for e in model.events())

    one.traffic(CHEAP)  # cheaper again, but a suspension waits for the user
    passes_over(e2e_operator, model, WINDOW_SECONDS)  # a whole cost window of passes
    assert model.replicas() == 0

    # any spec change resumes: here a higher ceiling, which also reaches the sidecar's settings file
    model.patch_spec({"cost": {"ceilingUSDPerMillionTokens": 50}})
    wait_for(lambda: model.replicas() == 1, 10, "the replicas restored")
    # the pass applies the workload before it writes the status: the phase follows within the pass
    wait_for(lambda: model.status()["phase"] != "Suspended", 5, "the phase to leave Suspended")

    def new_ceiling() -> bool:
        # the restored pod is a new one: its sidecar starts when kwok runs it (refused until then)
        try:
            return value(one.figures(), "datajax_cost_ceiling_usd_per_million_tokens") == 50.0
        except OSError:
            return False

    wait_for(new_ceiling, 30, "the new ceiling in the new pod's sidecar")


def test_idle_and_dead_sidecars_and_other_models_stay_on_time(serve: Serve) -> None:
    idle = serve("idle", spec())
    idle.start_slices(1)  # no traffic at all
    dying = serve("dying", spec())
    [victim] = dying.start_slices(1)
    victim.traffic(CHEAP)
    stalled = serve("stalled", spec())
    # a "sidecar" that accepts connections and never answers: every scrape of it runs to the timeout
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(64)
    hang_port = black_hole.getsockname()[1]
    stalled.discovery.create_namespaced_endpoint_slice(
        stalled.namespace,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "stalled-e2e", "labels": {"kubernetes.io/service-name": "stalled"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["198.51.100.1"]}],  # dialled as 127.0.0.1
            "ports": [{"name": "metrics", "port": hang_port, "protocol": "TCP"}],
        },
    )
    try:
        insufficient = wait_for(
            lambda: (
                idle.condition("CostCeilingBreached").get("reason") == "InsufficientTraffic"
                and idle.condition("CostCeilingBreached")
            ),
            3 * WINDOW_SECONDS,
            "Unknown/InsufficientTraffic",
        )
        assert insufficient["status"] == "Unknown"
        assert "metrics" in idle.status() and "costUSDPerMillionTokens" not in idle.status()["metrics"]
        wait_for(lambda: dying.condition("MetricsAvailable").get("status") == "True", 15, "dying scraped")

        victim.kill()
        dead = wait_for(
            lambda: (
                dying.condition("MetricsAvailable").get("status") == "False"
                and dying.condition("MetricsAvailable")
            ),
            10,
            "MetricsAvailable=False",
        )
        assert dead["reason"] == "ScrapeFailed" and victim.endpoint_address in dead["message"]
        stalled_condition = wait_for(
            lambda: (
                stalled.condition("MetricsAvailable").get("reason") == "ScrapeFailed"
                and stalled.condition("MetricsAvailable")
            ),
            15,
            "the stalled model's scrape to time out",
        )
        assert (
            "no answer within" in stalled_condition["message"] or "timed out" in stalled_condition["message"]
        )

        # meanwhile the idle model is still evaluated: its unchanged figures are rewritten once per
        # cost window (status.writes), so its sample time keeps moving
        stamps: set[str] = set()

        def moved() -> bool:
            stamps.add(idle.status()["metrics"]["sampledAt"])
            return len(stamps) >= 2

        wait_for(
            moved,
            2 * WINDOW_SECONDS + 2 * OBSERVE_SECONDS,
            "the idle model's sample time to move",
            every=0.25,
            explain=lambda: str(stamps),
        )
    finally:
        black_hole.close()


def test_two_replicas_with_different_traffic_aggregate_as_documented(serve: Serve) -> None:
    model = serve("pair", spec(replicas=2, cost={"basis": "total"}))
    busy, light = model.start_slices(2)
    busy.traffic(CHEAP)
    light.traffic(
        Traffic(300, 700, requests_per_second=5, prefix_hit_ratio=0.1, e2e_seconds=1.2, ttft_seconds=0.5)
    )
    wait_for(lambda: settled(busy) and settled(light), 30, "both windows to fill")

    def expected() -> dict[str, float]:
        figures = [busy.figures(), light.figures()]
        prompt = [value(f, "datajax_tokens_per_second", kind="prompt") for f in figures]
        tokens = sum(
            p + value(f, "datajax_tokens_per_second", kind="generation")
            for p, f in zip(prompt, figures, strict=True)
        )
        usd = sum(value(f, "datajax_cost_usd_per_hour") for f in figures)
        hits = [value(f, "datajax_prefix_cache_hit_ratio") for f in figures]
        return {
            "costUSDPerHour": usd,
            "tokensPerSecond": tokens,
            "costUSDPerMillionTokens": usd / (tokens * 3600) * 1e6,
            "breakEvenTokensPerSecond": usd * 1e6 / (3600 * 3.0),
            "prefixCacheHitRatio": sum(h * p for h, p in zip(hits, prompt, strict=True)) / sum(prompt),
            "p95LatencySeconds": max(value(f, "datajax_latency_p95_seconds", kind="e2e") for f in figures),
            "p95TTFTSeconds": max(value(f, "datajax_latency_p95_seconds", kind="ttft") for f in figures),
        }

    def aggregated() -> bool:
        metrics = model.status().get("metrics") or {}
        want = expected()
        return bool(metrics) and all(
            metrics.get(key) == pytest.approx(target, rel=FIGURE_TOLERANCE, abs=2e-3)
            for key, target in want.items()
        )

    wait_for(aggregated, 20, "status.metrics aggregated across both sidecars")
    metrics = model.status()["metrics"]
    # the figures themselves: $43.20/h for 6,000 tokens/s; the light slice's p95 (1.2 s bucket) wins
    assert metrics["costUSDPerHour"] == pytest.approx(43.2)
    assert metrics["tokensPerSecond"] == pytest.approx(6000, rel=0.05)  # jitter: see the steady test
    assert metrics["costUSDPerMillionTokens"] == pytest.approx(2.0, rel=0.05)
    mean_of_ratios = (1.2 + 21.6 / (1000 * 3600) * 1e6) / 2  # $3.60: what averaging would say
    assert metrics["costUSDPerMillionTokens"] < 0.75 * mean_of_ratios
    assert metrics["prefixCacheHitRatio"] == pytest.approx((0.6 * 4000 + 0.1 * 300) / 4300, abs=0.01)
    assert metrics["p95LatencySeconds"] > 1.0
