"""Operator configuration: images, the price table and sidecar settings.

Default prices come from the TPU catalog (`api/tpu_catalog.json`: us-central1 list prices per
chip-hour, each generation's record naming their source and date); a tier the catalog has no sourced
price for (v5e/v5p CUDs, every TPU7x tier) is absent and must be set explicitly. Spot prices change
up to daily, so the spot defaults are a snapshot. A config file (YAML or JSON, camelCase keys) given
with `--config FILE` replaces any key it sets; a `prices` key replaces the whole table, so an entry
left out is unknown, never a silently kept default.
"""

from pathlib import Path
from typing import Annotated, Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from datajax_operator.api.spec import Pricing, duration_seconds
from datajax_operator.api.tpu import CATALOG, GENERATIONS

VLLM_TPU_IMAGE: Final = "vllm/vllm-tpu:v0.29.0"
"""Pinned vLLM TPU release (tpu-inference backend); also the base of the runtime image."""

RUNTIME_IMAGE: Final = "datajax/datajax-runtime:0.1.0"


def _catalog_prices() -> dict[str, dict[Pricing, float]]:
    tiers: tuple[Pricing, ...] = ("on-demand", "spot", "cud-1y", "cud-3y")
    return {
        gen: {tier: record.prices[tier] for tier in tiers if tier in record.prices}
        for gen, record in CATALOG.items()
        if record.prices
    }


DEFAULT_PRICES: Final[dict[str, dict[Pricing, float]]] = _catalog_prices()


_PINNED: Final[dict[str, Any]] = {"not": {"pattern": ":latest$"}}
_GENERATION_PATTERN: Final = "^(" + "|".join(GENERATIONS) + ")$"


class OperatorConfig(BaseModel):
    """Settings of one operator installation (the Helm chart mounts them from a ConfigMap).

    The chart's values.schema.json `config` object is generated from this model (`make crd`,
    tools/values_schema.py), so helm refuses what the operator would refuse."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    runtime_image: str = Field(
        default=RUNTIME_IMAGE,
        min_length=1,
        json_schema_extra=_PINNED,
        description="Image with datajax-sidecar and the vLLM plugin (a pinned tag or digest, never latest).",
    )
    vllm_image: str = Field(
        default=VLLM_TPU_IMAGE,
        min_length=1,
        json_schema_extra=_PINNED,
        description="vLLM TPU image used when no plan bundle is given (a pinned tag or digest, never "
        "latest).",
    )
    prices: dict[str, dict[Pricing, Annotated[float, Field(gt=0)]]] = Field(
        default_factory=lambda: {gen: dict(tiers) for gen, tiers in DEFAULT_PRICES.items()},
        json_schema_extra={"propertyNames": {"pattern": _GENERATION_PATTERN}},
        description="generation -> pricing tier -> US dollars per chip-hour.",
    )
    sidecar_port: int = Field(
        default=9400,
        ge=1024,
        le=65535,
        description="Port of the sidecar's /metrics (1024 or above: the sidecar runs as a non-root user).",
    )
    sidecar_interval: str = Field(
        default="5s", pattern=r"^[1-9][0-9]{0,4}(s|m)$", description="How often the sidecar scrapes vLLM."
    )
    observe_interval: str = Field(
        default="30s",
        pattern=r"^[1-9][0-9]{0,4}(s|m)$",
        description="How often the operator reads every model's sidecars back into its status "
        "(`datajax-operator run --observe-interval` overrides it).",
    )

    @field_validator("runtime_image", "vllm_image")
    @classmethod
    def _pinned(cls, image: str) -> str:
        if image.endswith(":latest"):
            raise ValueError(f"{image}: pin a tag or digest, never latest")
        return image

    @field_validator("prices")
    @classmethod
    def _known_generations(cls, prices: dict[str, dict[Pricing, float]]) -> dict[str, dict[Pricing, float]]:
        unknown = sorted(set(prices) - set(GENERATIONS))
        if unknown:
            raise ValueError(
                f"unknown TPU generation(s) {', '.join(unknown)}; known: {', '.join(GENERATIONS)}"
            )
        return prices

    @property
    def observe_interval_seconds(self) -> float:
        return float(duration_seconds(self.observe_interval))

    @property
    def scrape_timeout_seconds(self) -> float:
        """A sidecar that has not answered within this is counted as failed for the pass: at most one
        interval, so one slow endpoint can never hold a model's observation past its next turn."""
        return min(5.0, self.observe_interval_seconds)


def load_config(path: Path | None) -> OperatorConfig:
    """The configuration in a YAML/JSON file, or the defaults when no file is given."""
    if path is None:
        return OperatorConfig()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the operator config must be a mapping of camelCase keys")
    return OperatorConfig.model_validate(data)
