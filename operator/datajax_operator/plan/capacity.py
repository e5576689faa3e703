"""The capacity model `plan` shows: per slice, the roofline against what the cost ceiling needs.

At a ceiling of C $/Mtok a slice costing P $/hour must serve at least P x 10^6 / (3600 x C) tokens/s
(on the cost basis); when the slice's roofline is below that, no traffic and no replica count can meet
the ceiling on this topology, and `plan` says so before anything is deployed.
"""

from dataclasses import dataclass

from datajax_operator.api.spec import DataJaxModelSpec
from datajax_operator.plan.catalog import Placement
from datajax_operator.plan.cost import CostPlan, breakeven_tokens_per_second
from datajax_operator.plan.mesh import MeshPlan
from datajax_operator.plan.roofline import (
    DEFAULT_OUTPUT_TOKENS,
    DEFAULT_PROMPT_TOKENS,
    SEED_EFFICIENCY,
    Roofline,
    performance_source,
    roofline,
)


@dataclass(frozen=True)
class CapacityPlan:
    """One slice's roofline and the ceiling's floor on its throughput."""

    roofline: Roofline | None
    """None when the spec does not give model.parametersBillions and model.dtype."""
    breakeven_tokens_per_second_per_slice: float
    basis: str
    source: str

    @property
    def mixed_tokens_per_second(self) -> float | None:
        """Roofline tokens/s on the cost basis at the default request mix."""
        if self.roofline is None:
            return None
        mixed = self.roofline.mixed_tokens_per_second(DEFAULT_PROMPT_TOKENS, DEFAULT_OUTPUT_TOKENS)
        if self.basis == "output":
            return mixed * DEFAULT_OUTPUT_TOKENS / (DEFAULT_PROMPT_TOKENS + DEFAULT_OUTPUT_TOKENS)
        return mixed

    @property
    def ceiling_reachable(self) -> bool | None:
        """Whether the roofline is above the break-even rate (None without a roofline)."""
        mixed = self.mixed_tokens_per_second
        return None if mixed is None else mixed >= self.breakeven_tokens_per_second_per_slice

    def summary(self) -> str:
        """One sentence: what the ceiling needs per slice and what the roofline allows."""
        need = f"the ceiling needs {self.breakeven_tokens_per_second_per_slice:,.0f} tokens/s per slice"
        mixed = self.mixed_tokens_per_second
        if mixed is None:
            return f"{need}; set model.parametersBillions and model.dtype to compare it with the roofline"
        verdict = "reachable" if self.ceiling_reachable else "NOT reachable on this topology"
        return f"{need} ({self.basis} basis); this slice's roofline is about {mixed:,.0f}: {verdict}"

    def to_json(self) -> dict[str, object]:
        """The `capacity` object of `datajax-operator plan -o json`."""
        r = self.roofline
        return {
            "breakEvenTokensPerSecondPerSlice": round(self.breakeven_tokens_per_second_per_slice, 3),
            "basis": self.basis,
            "roofline": None
            if r is None
            else {
                "decodeTokensPerSecond": round(r.decode_tokens_per_second, 1),
                "prefillTokensPerSecond": round(r.prefill_tokens_per_second, 1),
                "mixedTokensPerSecond": round(self.mixed_tokens_per_second or 0.0, 1),
                "mix": {"promptTokens": DEFAULT_PROMPT_TOKENS, "outputTokens": DEFAULT_OUTPUT_TOKENS},
                "batch": r.batch,
                "contextTokens": r.context_tokens,
                "decodeBound": r.decode_bound,
                "kvBytesPerToken": r.kv_bytes_per_token,
                "seedEfficiency": SEED_EFFICIENCY,
            },
            "ceilingReachable": self.ceiling_reachable,
            "summary": self.summary(),
            "source": self.source,
        }


def capacity_plan(
    spec: DataJaxModelSpec, placement: Placement, mesh: MeshPlan, cost: CostPlan
) -> CapacityPlan:
    """The capacity model of one slice of this plan."""
    slice_usd_per_hour = placement.chips * cost.usd_per_chip_hour
    return CapacityPlan(
        roofline=roofline(spec, placement, mesh),
        breakeven_tokens_per_second_per_slice=breakeven_tokens_per_second(
            slice_usd_per_hour, cost.ceiling_usd_per_million_tokens
        ),
        basis=spec.cost.basis,
        source=performance_source(placement.generation),
    )
