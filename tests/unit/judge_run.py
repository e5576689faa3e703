"""Steps one model's judgement through time as the operator does: each status stored and read back as
the next pass's previous one, the judgement's memory threaded through (pure; no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from djm_fixtures import model_with

from datajax_operator.api.status import DataJaxModelStatus
from datajax_operator.plan import OperatorConfig, make_plan
from datajax_operator.status import (
    Evaluation,
    Observations,
    Recent,
    SidecarFigures,
    SidecarScrape,
    WorkloadObservation,
    evaluate,
    judge,
)

T0 = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
WINDOW = 60  # the specs below use cost.window 1m


def slice_figures(
    prompt: float, generation: float, *, hit: float = 0.5, p95: float = 0.3, usd_per_hour: float = 21.6
) -> SidecarFigures:
    return SidecarFigures(
        usd_per_hour=usd_per_hour,
        prompt_tokens_per_second=prompt,
        generation_tokens_per_second=generation,
        prefix_cache_hit_ratio=hit,
        p95_e2e_latency_seconds=p95,
        p95_ttft_seconds=p95 / 10,
        window_seconds=60.0,
        upstream_up=True,
    )


def scrapes(*figures: SidecarFigures | None) -> tuple[SidecarScrape, ...]:
    return tuple(
        SidecarScrape(f"10.0.0.{i}:9400", f, None if f is not None else "unreachable: refused")
        for i, f in enumerate(figures, start=2)
    )


# 8 chips x $2.70 = $21.60/h per slice; break-even at a $3 ceiling: 2,000 tokens/s per slice.
CHEAP = slice_figures(4000, 1000)  # $1.20/Mtok
DEAR = slice_figures(400, 100)  # $12/Mtok


class Run:
    """Steps one model's judgement through time, feeding each status back as the previous one."""

    def __init__(self, generation: int = 1, *, interval: float = 10.0, **spec: Any) -> None:
        spec.setdefault("cost", {})
        spec["cost"] = {"window": "1m", **spec["cost"]}
        self.model = model_with(**spec)
        self.generation = generation
        self.status: DataJaxModelStatus | None = None
        self.now = T0
        self.actions: list[str] = []
        self.recent = Recent()
        self.replicas: int = self.model.spec.replicas
        self.max_age = timedelta(seconds=3 * interval)  # what the operator passes: 3 observe intervals

    def step(self, seconds: float, *figures: SidecarFigures | None) -> DataJaxModelStatus:
        self.now = T0 + timedelta(seconds=seconds)
        plan = make_plan(self.model, OperatorConfig())
        judgement = judge(
            self.model.spec,
            self.generation,
            self.status,
            scrapes(*figures),
            self.now,
            slice_usd_per_hour=plan.placement.chips * plan.cost.usd_per_chip_hour,
            recent=self.recent,
            max_age=self.max_age,
        )
        self.recent = judgement.recent
        workload = WorkloadObservation(
            "Deployment", "m", desired=judgement.replicas, available=judgement.replicas
        )
        status = evaluate(
            Evaluation(plan=plan, problems=[]),
            Observations(workload=workload),
            self.generation,
            self.status,
            self.now,
            judgement=judgement,
        )
        # what reconcile stores and reads back next time
        self.status = DataJaxModelStatus.model_validate(
            status.model_dump(mode="json", by_alias=True, exclude_none=True)
        )
        self.replicas = judgement.replicas
        self.actions += [a.reason for a in judgement.actions]
        return self.status

    def condition(self, kind: str = "CostCeilingBreached") -> tuple[str, str]:
        assert self.status is not None
        found = next(c for c in self.status.conditions if c.type == kind)
        return found.status, found.reason
