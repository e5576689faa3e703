"""The chart's cost and latency alerts judge a model as the operator does, proven on imbalanced slices.

Each scenario is a timeline of per-slice figures, one sample a minute. The same timeline goes
  - to the operator's pure judgement (``status.judge`` through ``status.evaluate``, one pass a minute,
    each status fed back as the previous one, as the reconcile stores it), and
  - to promtool as the series the sidecars would export, against the rules of the rendered chart.
The expected alerts of the promtool test are the operator's verdicts: at every minute the cost alert
must fire for exactly the models whose run of samples above the ceiling has lasted their cost.window
(what turns CostCeilingBreached True and triggers cost.action), and the latency alert likewise for
the p95 objective. The rules' annotations are left out here (the figures' wording is tested in
rules/models.test.yaml); what fires, for which model, and when, is what must agree.

The per-pod alerts this replaced disagreed on both scenarios named in the issue: a busy and an idle
slice (the idle pod over its ceiling, the model under it), and a slice under the ceiling beside one
too quiet to be judged alone (the model over it, no pod alerting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from datajax_operator.api.resource import DataJaxModel
from datajax_operator.api.spec import duration_seconds
from datajax_operator.api.status import DataJaxModelStatus
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan
from datajax_operator.status import (
    Evaluation,
    Observations,
    SidecarFigures,
    SidecarScrape,
    WorkloadObservation,
    evaluate,
    judge,
)
from tests.chart.chartlib import RELEASE, Renderer, one, run

pytestmark = pytest.mark.chart

T0 = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)
MINUTES = 40
SIDECAR_JOB = f"{RELEASE}-datajax-operator-sidecar"
NAN = math.nan
USD_PER_HOUR = 21.6  # one v6e 2x4 slice: 8 chips at $2.70 (what the plan below prices)


@dataclass(frozen=True)
class Sample:
    """One slice at one minute: None for a sidecar Prometheus and the operator cannot read."""

    prompt: float
    generation: float
    p95: float = 0.3
    upstream_up: bool = True


@dataclass
class Scenario:
    name: str
    slices: list[list[Sample | None]]
    """Per slice, one sample per minute (MINUTES of them)."""
    cost: dict[str, Any] = field(default_factory=dict)
    slo: float | None = None

    @property
    def window_seconds(self) -> float:
        return float(duration_seconds(self.cost.get("window", "10m")))

    @property
    def ceiling(self) -> float:
        return float(self.cost.get("ceilingUSDPerMillionTokens", 3.0))

    @property
    def min_tokens_per_second(self) -> float:
        return float(self.cost.get("minTokensPerSecond", 1.0))


def steady(sample: Sample | None, minutes: int = MINUTES) -> list[Sample | None]:
    return [sample] * minutes


def timeline(*parts: tuple[int, Sample | None]) -> list[Sample | None]:
    """Consecutive runs: (minutes, sample)."""
    out: list[Sample | None] = []
    for minutes, sample in parts:
        out += [sample] * minutes
    assert len(out) == MINUTES
    return out


SCENARIOS = [
    # The first case: 9,000 + 500 tokens/s at $21.60/h each is $1.26/Mtok for the model, under
    # $3, though the idle slice alone costs $12/Mtok.
    Scenario("busy-and-idle", [steady(Sample(8000, 1000)), steady(Sample(400, 100))], {"window": "5m"}),
    # The reverse: 2,400 tokens/s is $2.50/Mtok on its slice, the other slice's 50 tokens/s is below
    # minTokensPerSecond alone (no per-pod figure), and the model is at $4.90/Mtok: over $3.
    Scenario(
        "under-beside-unjudged",
        [steady(Sample(2000, 400)), steady(Sample(40, 10))],
        {"window": "5m", "minTokensPerSecond": 100},
    ),
    # Output basis over a 10-minute window: 2,500 generated tokens/s is $4.80/Mtok until minute 20,
    # then 9,000 ($1.33): fires after its own window, resolves when under.
    Scenario(
        "output-basis",
        [
            timeline((20, Sample(20000, 1500)), (20, Sample(20000, 6000))),
            timeline((20, Sample(20000, 1000)), (20, Sample(20000, 3000))),
        ],
        {"window": "10m", "basis": "output"},
    ),
    # A sidecar that cannot be read (minutes 9-11) is a gap: it neither resets nor advances the run, so
    # the established breach holds through it (the alert on the model's last figure).
    Scenario(
        "sidecar-down",
        [
            steady(Sample(300, 100)),
            timeline((9, Sample(300, 100)), (3, None), (28, Sample(300, 100))),
        ],
        {"window": "5m"},
    ),
    # The same gap before the run is established (minutes 2-4 of a 5m window): the run that began at
    # minute 0 is still the one judged after it.
    Scenario(
        "sidecar-down-early",
        [
            steady(Sample(300, 100)),
            timeline((2, Sample(300, 100)), (3, None), (35, Sample(300, 100))),
        ],
        {"window": "5m"},
    ),
    # A slice whose vLLM is not up yet serves nothing and counts no tokens, but is paid for.
    Scenario(
        "one-slice-compiling",
        [steady(Sample(1500, 500)), steady(Sample(NAN, NAN, NAN, upstream_up=False))],
        {"window": "5m"},
    ),
    # Latency: the operator takes the slowest slice's p95 (0.9 s against 0.5 s from minute 3 to 25);
    # a slice without finished requests (NaN p95) does not hide the other's.
    Scenario(
        "slowest-slice",
        [
            steady(Sample(4000, 1000, p95=0.3)),
            timeline(
                (3, Sample(4000, 1000, 0.3)), (22, Sample(4000, 1000, 0.9)), (15, Sample(4000, 1000, 0.3))
            ),
            steady(Sample(0, 0, p95=NAN)),
        ],
        {"window": "5m"},
        slo=0.5,
    ),
]


def pod_cost(scenario: Scenario, s: Sample) -> float:
    """The $/Mtok one slice's sidecar exports on its own (NaN when too quiet to be judged alone)."""
    tokens = s.generation if scenario.cost.get("basis") == "output" else s.prompt + s.generation
    judged = not math.isnan(tokens) and tokens > 0 and tokens >= scenario.min_tokens_per_second
    return USD_PER_HOUR / (tokens * 3600) * 1e6 if judged else NAN


def _figures(sample: Sample) -> SidecarFigures:
    return SidecarFigures(
        usd_per_hour=USD_PER_HOUR,
        prompt_tokens_per_second=sample.prompt,
        generation_tokens_per_second=sample.generation,
        prefix_cache_hit_ratio=NAN,
        p95_e2e_latency_seconds=sample.p95,
        p95_ttft_seconds=NAN,
        window_seconds=NAN if math.isnan(sample.prompt) else 300.0,
        upstream_up=sample.upstream_up,
    )


def _model(scenario: Scenario) -> DataJaxModel:
    spec: dict[str, Any] = {
        "model": {"name": "org/m"},
        "tpu": {"generation": "v6e", "topology": "2x4"},
        "replicas": len(scenario.slices),
        "cost": scenario.cost,
    }
    if scenario.slo is not None:
        spec["slo"] = {"p95LatencySeconds": scenario.slo}
    return DataJaxModel.model_validate(
        {
            "apiVersion": "datajax.dev/v1alpha1",
            "kind": "DataJaxModel",
            "metadata": {"name": scenario.name},
            "spec": spec,
        }
    )


def operator_verdicts(scenario: Scenario) -> tuple[list[bool], list[bool]]:
    """Per minute: whether the operator's cost run is established above the ceiling, and its latency
    run above the objective (the passes in which it holds the breach condition True on a fresh run)."""
    model = _model(scenario)
    plan = make_plan(model, OperatorConfig())
    assert plan.placement.chips * plan.cost.usd_per_chip_hour == pytest.approx(USD_PER_HOUR)
    window = timedelta(seconds=scenario.window_seconds)
    status: DataJaxModelStatus | None = None
    cost, latency = [], []
    for minute in range(MINUTES):
        now = T0 + timedelta(minutes=minute)
        scrapes = [
            SidecarScrape(f"10.0.0.{i}:9400", None if s[minute] is None else _figures(s[minute]), "timed out")
            for i, s in enumerate(scenario.slices)
        ]
        judgement = judge(model.spec, 1, status, scrapes, now, slice_usd_per_hour=USD_PER_HOUR)
        workload = WorkloadObservation("Deployment", scenario.name, len(scrapes), len(scrapes))
        status = evaluate(
            Evaluation(plan=plan, problems=[]),
            Observations(workload=workload),
            1,
            status,
            now,
            judgement=judgement,
        )
        status = DataJaxModelStatus.model_validate(
            status.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
        conditions = {c.type: c for c in status.conditions}
        assert status.cost_evaluation is not None
        fires = status.cost_evaluation.sample == "Above" and now - status.cost_evaluation.since >= window
        if fires:
            assert conditions["CostCeilingBreached"].status == "True"
        cost.append(fires)
        evaluation = status.latency_evaluation
        slow = evaluation is not None and evaluation.sample == "Above" and now - evaluation.since >= window
        if slow:
            assert conditions["LatencySLOBreached"].status == "True"
        latency.append(slow)
    return cost, latency


def _value(value: float | None) -> str:
    if value is None:
        return "stale"
    return "NaN" if math.isnan(value) else repr(float(value))


def _series(name: str, labels: dict[str, str], values: list[float | None]) -> dict[str, str]:
    text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{text}}}", "values": " ".join(_value(v) for v in values)}


def input_series(scenario: Scenario) -> list[dict[str, str]]:
    """What the sidecars of the scenario's slices export, minute by minute, and Prometheus' `up`."""
    basis = scenario.cost.get("basis", "total")
    out = []
    for i, samples in enumerate(scenario.slices):
        labels = {
            "namespace": "ml",
            "model": scenario.name,
            "pod": f"{scenario.name}-{i}",
            "instance": f"10.0.0.{i}:9400",
            "job": SIDECAR_JOB,
        }

        def each(pick: Any, samples: list[Sample | None] = samples) -> list[float | None]:
            return [None if s is None else pick(s) for s in samples]

        out += [
            _series("up", labels, [0.0 if s is None else 1.0 for s in samples]),
            _series("datajax_cost_usd_per_hour", labels, each(lambda s: USD_PER_HOUR)),
            _series(
                "datajax_cost_usd_per_million_tokens",
                {**labels, "basis": basis},
                each(lambda s: pod_cost(scenario, s)),
            ),
            _series("datajax_cost_ceiling_usd_per_million_tokens", labels, each(lambda s: scenario.ceiling)),
            _series(
                "datajax_cost_min_tokens_per_second", labels, each(lambda s: scenario.min_tokens_per_second)
            ),
            _series("datajax_cost_window_seconds", labels, each(lambda s: scenario.window_seconds)),
            _series("datajax_tokens_per_second", {**labels, "kind": "prompt"}, each(lambda s: s.prompt)),
            _series(
                "datajax_tokens_per_second", {**labels, "kind": "generation"}, each(lambda s: s.generation)
            ),
            _series("datajax_latency_p95_seconds", {**labels, "kind": "e2e"}, each(lambda s: s.p95)),
            _series("datajax_upstream_up", labels, each(lambda s: 1.0 if s.upstream_up else 0.0)),
        ]
        if scenario.slo is not None:
            out.append(_series("datajax_latency_slo_seconds", labels, each(lambda s: scenario.slo)))
    return out


def _rules_without_annotations(renderer: Renderer) -> list[dict[str, Any]]:
    docs = renderer.render(sets=["alerts.prometheusRule.enabled=true"])
    groups: list[dict[str, Any]] = one(docs, "PrometheusRule")["spec"]["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return groups


def test_the_scenarios_are_the_disagreements_of_per_pod_alerts() -> None:
    """Guards the scenarios themselves: what a per-pod comparison would have said differs from the
    operator's verdict on the model."""
    busy_idle = next(s for s in SCENARIOS if s.name == "busy-and-idle")
    assert not any(operator_verdicts(busy_idle)[0])
    # ... while the idle pod, on its own, is over the ceiling the whole time
    idle = busy_idle.slices[1]
    assert all(s is not None and pod_cost(busy_idle, s) > busy_idle.ceiling for s in idle)
    reverse = next(s for s in SCENARIOS if s.name == "under-beside-unjudged")
    assert any(operator_verdicts(reverse)[0])
    # ... while no pod, on its own, is over its ceiling: one is under it, the other too quiet to judge
    costs = [pod_cost(reverse, s) for samples in reverse.slices for s in samples if s is not None]
    assert not any(c > reverse.ceiling for c in costs)
    assert any(c < reverse.ceiling for c in costs) and any(math.isnan(c) for c in costs)


def test_alerts_fire_exactly_when_the_operator_breaches(
    renderer: Renderer, promtool: str, tmp_path: Path
) -> None:
    (tmp_path / "alerts.rules.yaml").write_text(
        yaml.safe_dump({"groups": _rules_without_annotations(renderer)}, sort_keys=False)
    )
    series: list[dict[str, str]] = []
    expected: dict[str, list[list[str]]] = {
        name: [[] for _ in range(MINUTES)]
        for name in ("DataJaxCostCeilingBreached", "DataJaxLatencySLOBreached")
    }
    fired = {name: 0 for name in expected}
    for scenario in SCENARIOS:
        series += input_series(scenario)
        cost, latency = operator_verdicts(scenario)
        for name, verdicts in (("DataJaxCostCeilingBreached", cost), ("DataJaxLatencySLOBreached", latency)):
            for minute, breached in enumerate(verdicts):
                if breached:
                    expected[name][minute].append(scenario.name)
                    fired[name] += 1
    assert all(fired.values()), f"every alert must fire somewhere: {fired}"
    cases = [
        {
            "eval_time": f"{minute}m",
            "alertname": name,
            "exp_alerts": [
                {"exp_labels": {"severity": "warning", "namespace": "ml", "model": model}}
                for model in models[minute]
            ],
        }
        for name, models in expected.items()
        for minute in range(MINUTES)
    ]
    test_file = tmp_path / "agreement.test.yaml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": ["alerts.rules.yaml"],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}],
            },
            sort_keys=False,
        )
    )
    proc = run([promtool, "test", "rules", str(test_file)])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
