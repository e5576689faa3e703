"""Cost of a plan (DESIGN §5, §6): $/hour for every replica and the break-even rate at the ceiling.

Prices come from the spec (`cost.usdPerChipHour`) or the operator's price table; a missing table entry
is a Problem, never a guess, because a wrong price silently moves every $/token figure.
"""

from dataclasses import dataclass

from datajax_operator.api.spec import DataJaxModelSpec, Pricing
from datajax_operator.api.tpu import CATALOG
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.problems import Problem


@dataclass(frozen=True)
class CostPlan:
    """Estimated cost of serving the model on every replica."""

    pricing: Pricing | None
    """Price tier used, or None when the spec gave an explicit price."""
    usd_per_chip_hour: float
    usd_per_hour: float
    ceiling_usd_per_million_tokens: float
    breakeven_tokens_per_second: float
    note: str | None = None
    """Caveat on the price, e.g. that a spot price is a snapshot of one that changes up to daily."""

    def to_json(self) -> dict[str, object]:
        """The `cost` object of `datajax-operator plan -o json` (DESIGN §6), plus the price's caveat."""
        document: dict[str, object] = {
            "usdPerChipHour": self.usd_per_chip_hour,
            "usdPerHour": round(self.usd_per_hour, 6),
            "ceilingUSDPerMillionTokens": self.ceiling_usd_per_million_tokens,
            "breakEvenTokensPerSecond": round(self.breakeven_tokens_per_second, 3),
        }
        if self.note:
            document["priceNote"] = self.note
        return document


def spot_note(generation: str) -> str:
    """What every spot $/Mtok must carry: the price it rests on moves (the catalog's note and date)."""
    record = CATALOG.get(generation)
    dated = f" (default table from {record.price_date})" if record is not None else ""
    return f"spot prices change up to daily{dated}: check the current price and set cost.usdPerChipHour"


def pricing_tier(spec: DataJaxModelSpec) -> Pricing:
    """The price tier: the spec's, else spot for Spot nodes and on-demand otherwise."""
    if spec.cost.pricing is not None:
        return spec.cost.pricing
    return "spot" if spec.tpu.spot else "on-demand"


def breakeven_tokens_per_second(usd_per_hour: float, ceiling: float) -> float:
    """Tokens/s at which usd_per_hour costs exactly `ceiling` $/Mtok: usd/h · 10⁶ / (3600 · ceiling)."""
    return usd_per_hour * 1_000_000 / (3600 * ceiling)


def estimate_cost(spec: DataJaxModelSpec, chips: int, config: OperatorConfig) -> CostPlan | Problem:
    """$/hour = chips * replicas * $/chip-hour, and the whole model's break-even rate at the ceiling."""
    tier: Pricing | None = None
    if spec.cost.usd_per_chip_hour is not None:
        price = spec.cost.usd_per_chip_hour
    else:
        tier = pricing_tier(spec)
        known = config.prices.get(spec.tpu.generation, {}).get(tier)
        if known is None:
            return Problem(
                "spec.cost.usdPerChipHour",
                f"the operator's price table has no {tier} price for {spec.tpu.generation}: set "
                f"spec.cost.usdPerChipHour, or add prices.{spec.tpu.generation}.{tier} to the operator "
                "config",
            )
        price = known
    usd_per_hour = chips * spec.replicas * price
    ceiling = spec.cost.ceiling_usd_per_million_tokens
    return CostPlan(
        pricing=tier,
        usd_per_chip_hour=price,
        usd_per_hour=usd_per_hour,
        ceiling_usd_per_million_tokens=ceiling,
        breakeven_tokens_per_second=breakeven_tokens_per_second(usd_per_hour, ceiling),
        note=spot_note(spec.tpu.generation) if tier == "spot" else None,
    )
