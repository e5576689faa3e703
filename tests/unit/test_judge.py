"""Aggregation across replicas and the cost/latency judgement: hysteresis, actions, restarts (pure)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from judge_run import CHEAP, DEAR, T0, WINDOW, Run, slice_figures

from datajax_operator.observe import sidecar_endpoints, sidecar_figures
from datajax_operator.status import (
    SidecarFigures,
    aggregate,
)


def test_two_replicas_as_the_cost_model_page_computes_them() -> None:
    """docs/cost-model.md, "Two replicas": scrape-1 -> 2 on one slice, scrape-2 -> 3 on the other."""
    first = slice_figures(24070 / 5.5565, 1920 / 5.5565, hit=20224 / 24070, p95=0.285)
    second = slice_figures(28886 / 5.4726, 9600 / 5.4726, hit=0.851, p95=0.764)
    model = aggregate([first, second], basis="total", ceiling=3.0, min_tokens_per_second=1.0)
    assert model.usd_per_hour == pytest.approx(43.2)
    assert model.breakeven_tokens_per_second == pytest.approx(4000.0)
    assert model.tokens_per_second == pytest.approx(11709.9, abs=0.1)
    assert model.usd_per_million_tokens == pytest.approx(1.025, abs=5e-4)
    # each slice's own $/Mtok, as aggregate computes it for one slice: their mean ($1.068) is what the
    # rule avoids; the model's figure is total cost over total tokens
    each = [
        aggregate([one], basis="total", ceiling=3.0, min_tokens_per_second=1.0).usd_per_million_tokens
        for one in (first, second)
    ]
    assert each == [pytest.approx(1.283, abs=5e-4), pytest.approx(0.853, abs=5e-4)]
    assert sum(each) / 2 == pytest.approx(1.068, abs=5e-4) != model.usd_per_million_tokens
    assert model.prefix_cache_hit_ratio == pytest.approx(0.846, abs=5e-4)
    assert model.p95_latency_seconds == 0.764
    assert model.p95_ttft_seconds == pytest.approx(0.0764)


def test_aggregate_output_basis_minimum_and_unknowns() -> None:
    busy = slice_figures(1000, 100)
    warming = replace(slice_figures(math.nan, math.nan, hit=math.nan, p95=math.nan), upstream_up=False)
    model = aggregate([busy, warming], basis="output", ceiling=3.0, min_tokens_per_second=1.0)
    assert model.tokens_per_second == 100.0  # the warming slice's vLLM does not answer: no tokens
    assert model.usd_per_hour == pytest.approx(43.2)  # ... but it is paid for
    assert model.usd_per_million_tokens == pytest.approx(43.2 / (100 * 3600) * 1e6)
    assert model.prefix_cache_hit_ratio == 0.5 and model.p95_latency_seconds == 0.3
    quiet = aggregate([busy], basis="output", ceiling=3.0, min_tokens_per_second=500)
    assert math.isnan(quiet.usd_per_million_tokens) and quiet.tokens_per_second == 100.0
    unknown = aggregate([warming], basis="total", ceiling=3.0, min_tokens_per_second=1.0)
    assert math.isnan(unknown.tokens_per_second) and math.isnan(unknown.prefix_cache_hit_ratio)


def test_a_slice_that_cannot_be_read_still_pays_and_its_traffic_is_unknown() -> None:
    """Leaving an unreadable slice out would make $/Mtok cheaper (43.2/h for 4,000 tokens/s is
    $3.00/Mtok; without the idle second slice, $1.50): its price stays in, the traffic is unknown."""
    busy = slice_figures(3000, 1000)
    model = aggregate(
        [busy], basis="total", ceiling=3.0, min_tokens_per_second=1.0, unread=1, slice_usd_per_hour=21.6
    )
    assert model.sidecars == 2
    assert model.usd_per_hour == pytest.approx(43.2)
    assert model.breakeven_tokens_per_second == pytest.approx(4000.0)
    for unknown in ("tokens_per_second", "usd_per_million_tokens", "prefix_cache_hit_ratio"):
        assert math.isnan(getattr(model, unknown)), unknown
    assert math.isnan(model.p95_latency_seconds) and math.isnan(model.p95_ttft_seconds)


def test_a_restarted_sidecar_without_a_window_makes_the_traffic_unknown() -> None:
    """Its vLLM answers (it may be serving) but its window restarted: counting it as 0 tokens/s
    would make $/Mtok look dearer than it is."""
    restarted = slice_figures(math.nan, math.nan, hit=math.nan, p95=math.nan)
    model = aggregate(
        [slice_figures(3000, 1000), restarted], basis="total", ceiling=3.0, min_tokens_per_second=1.0
    )
    assert model.usd_per_hour == pytest.approx(43.2)
    assert math.isnan(model.tokens_per_second) and math.isnan(model.usd_per_million_tokens)


def test_an_unreadable_slice_is_judged_as_no_metrics_never_as_cheap() -> None:
    run = Run(replicas=2, cost={"action": "ScaleDown"})
    for t in range(0, 2 * WINDOW, 10):
        status = run.step(t, DEAR, None)
    assert status.metrics is not None and status.metrics.cost_usd_per_hour == pytest.approx(43.2)
    assert status.metrics.cost_usd_per_million_tokens is None
    assert status.cost_evaluation is not None and status.cost_evaluation.sample == "NoMetrics"
    assert run.actions == []


def test_breach_needs_a_whole_window_of_samples_above() -> None:
    run = Run()
    run.step(0, CHEAP)
    assert run.condition() == ("Unknown", "Evaluating")
    run.step(30, CHEAP)
    assert run.condition() == ("Unknown", "Evaluating")
    run.step(60, CHEAP)
    assert run.condition() == ("False", "UnderCeiling")
    # one bad sample does not flip it; neither does one failed scrape
    run.step(70, DEAR)
    assert run.condition() == ("False", "UnderCeiling")
    run.step(80, CHEAP)
    run.step(90, None)
    assert run.condition() == ("False", "UnderCeiling")
    # above for less than a window: still False; a whole window: True
    run.step(100, DEAR)
    run.step(159, DEAR)
    assert run.condition() == ("False", "UnderCeiling")
    status = run.step(160, DEAR)
    assert run.condition() == ("True", "CeilingExceeded")
    breached = next(c for c in status.conditions if c.type == "CostCeilingBreached")
    assert breached.last_transition_time == T0 + timedelta(seconds=160)
    assert "$12.000/Mtok" in breached.message and "100.0" not in breached.message
    assert "500.0 tokens/s" in breached.message and "break-even 2000.0" in breached.message
    assert status.metrics is not None and status.metrics.cost_usd_per_million_tokens == 12.0
    assert run.actions == []  # Alert: conditions and Events only
    assert run.replicas == 1


def test_unknown_reasons_insufficient_traffic_and_no_metrics() -> None:
    run = Run(cost={"minTokensPerSecond": 10})
    status = run.step(0)
    assert run.condition() == ("Unknown", "NoMetrics")
    assert run.condition("MetricsAvailable") == ("False", "NoEndpoints")
    assert status.metrics is None
    status = run.step(5, slice_figures(0, 0))
    assert run.condition() == ("Unknown", "InsufficientTraffic")
    assert run.condition("MetricsAvailable") == ("True", "SidecarsScraped")
    assert status.metrics is not None and status.metrics.cost_usd_per_hour == 21.6
    assert status.metrics.cost_usd_per_million_tokens is None  # not judged: absent, not 0
    run.step(10, slice_figures(5, 4))  # 9 tokens/s < 10
    assert run.condition() == ("Unknown", "InsufficientTraffic")
    run.step(20, slice_figures(1, 1), None)
    assert run.condition("MetricsAvailable")[1] == "ScrapeFailed"
    # a True verdict becomes Unknown only after a whole window without a judgeable sample
    run = Run()
    run.step(0, DEAR)
    run.step(60, DEAR)
    assert run.condition() == ("True", "CeilingExceeded")
    run.step(70, slice_figures(0, 0))
    assert run.condition() == ("True", "CeilingExceeded")
    run.step(130, slice_figures(0, 0))
    assert run.condition() == ("Unknown", "InsufficientTraffic")


def test_scale_down_one_slice_per_window_never_below_one_then_back() -> None:
    run = Run(replicas=3, cost={"action": "ScaleDown"})
    run.step(0, DEAR, DEAR, DEAR)
    assert run.replicas == 3
    run.step(60, DEAR, DEAR, DEAR)
    assert run.condition() == ("True", "CeilingExceeded") and run.replicas == 2
    run.step(90, DEAR, DEAR)
    assert run.replicas == 2  # at most once per window
    run.step(120, DEAR, DEAR)
    assert run.replicas == 1
    run.step(200, DEAR)
    assert run.replicas == 1  # never below 1
    assert run.actions == ["ScaledDown", "ScaledDown"]
    run.step(210, CHEAP)
    assert run.replicas == 1 and run.condition()[0] == "True"
    run.step(270, CHEAP)
    assert run.condition() == ("False", "UnderCeiling") and run.replicas == 3
    assert run.actions[-1] == "ScaledUp"
    assert run.status is not None and run.status.cost_evaluation is not None
    assert run.status.cost_evaluation.replicas is None


def test_suspend_until_the_spec_changes() -> None:
    run = Run(replicas=2, cost={"action": "Suspend"})
    run.step(0, DEAR, DEAR)
    status = run.step(60, DEAR, DEAR)
    assert run.replicas == 0 and status.phase == "Suspended"
    assert run.condition() == ("True", "Suspended")
    message = next(c.message for c in status.conditions if c.type == "CostCeilingBreached")
    assert "To resume, change anything in the spec" in message
    run.step(300, CHEAP, CHEAP)  # cheap again: still suspended, only a spec change resumes
    assert run.replicas == 0 and run.actions == ["Suspended"]
    run.generation = 2
    status = run.step(310, DEAR, DEAR)
    assert run.replicas == 2 and status.phase != "Suspended"
    assert run.condition() == ("True", "CeilingExceeded")  # held, not re-judged yet
    run.step(369, DEAR, DEAR)
    assert run.replicas == 2
    run.step(370, DEAR, DEAR)
    assert run.replicas == 0  # a whole new window above: suspended again


def test_state_survives_a_restart_and_an_unchanged_pass_writes_nothing() -> None:
    """The status is the only memory: a fresh Run fed the stored status continues the window."""
    run = Run()
    run.step(0, DEAR)
    stored = run.status
    restarted = Run()
    restarted.status = stored
    restarted.step(60, DEAR)
    assert restarted.condition() == ("True", "CeilingExceeded")
    # no sidecars at all, twice: the second pass computes the very status it read
    idle = Run()
    first = idle.step(0)
    assert idle.step(30) == first


def test_latency_slo_and_plan_registration() -> None:
    run = Run(slo={"p95LatencySeconds": 0.5}, plan={"configMapRef": {"name": "bundle"}})
    slow = slice_figures(4000, 1000, p95=0.9)
    registered = SidecarFigures(**{**slow.__dict__, "plan_registered": True, "plan_reason": "Registered"})
    run.step(0, registered)
    assert run.condition("LatencySLOBreached") == ("Unknown", "Evaluating")
    assert run.condition("PlanRegistered") == ("True", "Registered")
    run.step(60, registered)
    assert run.condition("LatencySLOBreached") == ("True", "SLOExceeded")
    failed = SidecarFigures(**{**slow.__dict__, "plan_registered": False, "plan_reason": "NoArchitecture"})
    run.step(61, failed)
    assert run.condition("PlanRegistered") == ("False", "NoArchitecture")
    types = [c.type for c in (run.status.conditions if run.status else [])]
    assert types == [
        "SpecValid", "WorkloadAvailable", "MetricsAvailable", "PlanRegistered", "DevicesMatch",
        "CostCeilingBreached", "LatencySLOBreached", "Ready",
    ]  # fmt: skip
    plain = Run()
    plain.step(0, CHEAP)
    assert {c.type for c in (plain.status.conditions if plain.status else [])} == {
        "SpecValid", "WorkloadAvailable", "MetricsAvailable", "CostCeilingBreached", "Ready",
    }  # fmt: skip


def test_endpoints_from_endpoint_slices() -> None:
    slices = [
        {
            "ports": [{"name": "http", "port": 8000}, {"name": "metrics", "port": 9400}],
            "endpoints": [
                {"addresses": ["10.0.0.2"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": False}},
                {"addresses": ["10.0.0.4"]},
                {"addresses": ["10.0.0.6"], "conditions": {"ready": False, "terminating": True}},
            ],
        },
        {"ports": [{"name": "metrics", "port": 9400}], "endpoints": [{"addresses": ["fd00::5"]}]},
        {"ports": None, "endpoints": None},
    ]
    # a warming (not ready) slice is billed too; a terminating one is leaving
    assert sidecar_endpoints(slices) == ["10.0.0.2:9400", "10.0.0.3:9400", "10.0.0.4:9400", "[fd00::5]:9400"]


def test_sidecar_figures_from_the_sidecars_own_exposition() -> None:
    from datajax_runtime.exporter import ExportState, render
    from datajax_runtime.plan_status import PlanStatus
    from datajax_runtime.window import Pricing, figures

    pricing = Pricing(chips=8, usd_per_chip_hour=2.7)
    state = ExportState(
        figures=figures(None, pricing),
        pricing=pricing,
        upstream_up=True,
        scrape_errors=0,
        slo_p95_seconds=None,
        plan_status_configured=True,
        plan=PlanStatus(False, "NoArchitecture", "no architecture in the bundle"),
        model="m",
    )
    parsed = sidecar_figures(render(state))
    assert parsed.usd_per_hour == pytest.approx(21.6) and parsed.upstream_up
    assert math.isnan(parsed.prompt_tokens_per_second) and parsed.window_seconds == 0.0
    assert parsed.plan_registered is False and parsed.plan_reason == "NoArchitecture"
    with pytest.raises(ValueError, match="datajax_cost_usd_per_hour"):
        sidecar_figures("up 1\n")


def test_every_cost_action_of_the_spec_is_in_the_actions_table() -> None:
    from typing import get_args

    from datajax_operator.api.spec import Cost
    from datajax_operator.status.actions import ACTIONS

    assert set(ACTIONS) == set(get_args(Cost.model_fields["action"].annotation))


def test_requests_per_second_is_read_and_optional() -> None:
    """The autoscaler's requests/s comes from datajax_requests_per_second; a sidecar that does not
    export it still parses (NaN: unknown)."""
    from datajax_runtime.exporter import ExportState, render
    from datajax_runtime.window import Pricing, figures

    pricing = Pricing(chips=8, usd_per_chip_hour=2.7)
    text = render(
        ExportState(
            figures=figures(None, pricing),
            pricing=pricing,
            upstream_up=True,
            scrape_errors=0,
            slo_p95_seconds=None,
            plan_status_configured=False,
            plan=None,
            model="m",
        )
    )
    lines = text.splitlines()
    [sample] = [line for line in lines if line.startswith("datajax_requests_per_second ")]
    assert sidecar_figures("\n".join(lines) + "\n").requests_per_second != 12.5
    with_rate = [("datajax_requests_per_second 12.5" if line == sample else line) for line in lines]
    assert sidecar_figures("\n".join(with_rate) + "\n").requests_per_second == 12.5
    without = [line for line in lines if "datajax_requests_per_second" not in line]
    assert math.isnan(sidecar_figures("\n".join(without) + "\n").requests_per_second)


def test_unscheduled_pods_in_the_schedulers_words() -> None:
    from datajax_operator.observe import unscheduled

    def pod(name: str, scheduled: dict[str, str] | None, node: str | None = None) -> dict[str, Any]:
        conditions = [{"type": "PodScheduled", **scheduled}] if scheduled else []
        spec = {"nodeName": node} if node else {}
        return {"metadata": {"name": name}, "spec": spec, "status": {"conditions": conditions}}

    why = {
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/19 nodes are available: 2 Insufficient google.com/tpu. ",
    }
    running = pod("m-a", {"status": "True"}, node="tpu-v6e-2x4-0")
    assert unscheduled([running, pod("m-new", None)]) is None  # not yet looked at by the scheduler
    assert unscheduled([running, pod("m-c", why), pod("m-b", why)]) == (
        "2 pod(s) cannot be scheduled (pod m-b: Unschedulable: "
        "0/19 nodes are available: 2 Insufficient google.com/tpu.)"
    )
