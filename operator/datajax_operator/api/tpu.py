"""The TPU vocabulary the API accepts, read from the one catalog record per generation.

`tpu_catalog.json` (next to this module) holds one record per TPU generation: GKE accelerator label,
slice topologies and the machine types that host them, chips per machine, JAX devices per chip, HBM,
bandwidth, peak bf16 FLOPs, vLLM's TPU default batch budget and list prices, each with its source.
This module is its only reader in the operator: the CRD's enum and CEL rules, `plan.catalog`'s
placements, `plan.config`'s default prices and the chart's values are all derived from it. The runtime
package reads a copy of the same file (`make crd` writes it; a unit test fails when it drifts).

Adding a generation is one record in the JSON plus `make crd` (docs/architecture.md shows it).
"""

import json
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any, Final

CATALOG_PATH: Final = Path(__file__).with_name("tpu_catalog.json")


@dataclass(frozen=True)
class GenerationRecord:
    """One TPU generation as the catalog describes it."""

    name: str
    display_name: str
    preview: bool
    accelerator: str
    machine_types: dict[str, int]
    """GKE machine type -> chips per VM (the `-Nt` suffix)."""
    topologies: dict[str, tuple[str, ...]]
    """Slice topology -> accepted machine types, the default (used when none is given) first."""
    devices_per_chip: int
    """JAX devices per chip: 1, or 2 on TPU7x where each TensorCore is its own device."""
    device_kinds: tuple[str, ...]
    """`jax.Device.device_kind` strings; the first is what real slices report."""
    pci_device_id: str
    hbm_bytes_per_chip: int
    hbm_bandwidth_bytes_per_second: int
    peak_bf16_flops_per_chip: int
    vllm_default_max_num_batched_tokens: int
    """vLLM's `--max-num-batched-tokens` default for `vllm serve` on this generation."""
    prices: dict[str, float]
    price_source: str
    price_date: str
    spot_note: str
    sources: dict[str, str]

    @property
    def hbm_bytes_per_device(self) -> int:
        return self.hbm_bytes_per_chip // self.devices_per_chip


def _record(name: str, raw: dict[str, Any]) -> GenerationRecord:
    prices = raw["prices"]
    return GenerationRecord(
        name=name,
        display_name=raw["displayName"],
        preview=bool(raw["preview"]),
        accelerator=raw["accelerator"],
        machine_types={m: int(n) for m, n in raw["machineTypes"].items()},
        topologies={t: tuple(ms) for t, ms in raw["topologies"].items()},
        devices_per_chip=int(raw["devicesPerChip"]),
        device_kinds=tuple(raw["deviceKinds"]),
        pci_device_id=raw["pciDeviceId"],
        hbm_bytes_per_chip=int(raw["hbmBytesPerChip"]),
        hbm_bandwidth_bytes_per_second=int(raw["hbmBandwidthBytesPerSecond"]),
        peak_bf16_flops_per_chip=int(raw["peakBf16FlopsPerChip"]),
        vllm_default_max_num_batched_tokens=int(raw["vllmDefaultMaxNumBatchedTokens"]),
        prices={tier: float(usd) for tier, usd in prices["usdPerChipHour"].items()},
        price_source=prices["source"],
        price_date=prices["date"],
        spot_note=prices["spotNote"],
        sources=dict(raw["sources"]),
    )


def load_catalog(path: Path = CATALOG_PATH) -> dict[str, GenerationRecord]:
    """Every generation record of the catalog file, in file order."""
    document = json.loads(path.read_text(encoding="utf-8"))
    return {name: _record(name, raw) for name, raw in document["generations"].items()}


CATALOG: Final[dict[str, GenerationRecord]] = load_catalog()

GENERATIONS: Final[tuple[str, ...]] = tuple(CATALOG)
PREVIEW_GENERATIONS: Final[frozenset[str]] = frozenset(g for g, r in CATALOG.items() if r.preview)
"""Generations the planner places but that the serving stack has not been validated on yet."""

SLICE_SHAPES: Final[dict[str, dict[str, tuple[str, ...]]]] = {g: r.topologies for g, r in CATALOG.items()}
"""generation -> topology -> accepted GKE machine types, the default (used when none is given) first."""


def topology_chips(topology: str) -> int:
    """Chips in a slice: the product of the topology's dimensions (`4x4` -> 16, `2x2x2` -> 8)."""
    return prod(int(part) for part in topology.split("x"))


def slice_devices(generation: str, topology: str) -> int:
    """JAX devices in a slice: chips times devices per chip (a TPU7x 2x2x2 has 8 chips, 16 devices)."""
    return topology_chips(topology) * CATALOG[generation].devices_per_chip


def topology_list() -> str:
    """Each generation's topologies, for the CRD's field description (`v5e: 1x1, 2x2, ...; v6e: ...`)."""
    return "; ".join(f"{g}: {', '.join(r.topologies)}" for g, r in CATALOG.items())


def generation_list() -> str:
    """The generations for messages and field descriptions: `v5e, v6e, v5p (preview), ...`."""
    return ", ".join(f"{g} (preview)" if g in PREVIEW_GENERATIONS else g for g in GENERATIONS)
