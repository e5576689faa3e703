"""A roofline model of what one slice can serve: decode and prefill tokens/s from HBM bandwidth and FLOPs.

It answers two questions before anything is deployed: can this topology reach the cost ceiling at all
(the ceiling is a floor on tokens/s per slice), and where should the autoscaler start (the seed of its
capacity-at-the-SLO estimate, which it then learns from the slices' own load and p95).

The model, per data-parallel engine (tp chips holding one full copy of the weights):
- decode is one step per generated token for every sequence of the batch; a step reads every weight
  and the batch's KV cache from HBM, and does 2 FLOPs per parameter per sequence, so it takes
  max((weights + batch x context x KV bytes per token) / HBM bandwidth, 2 x params x batch / FLOPs);
  decode tokens/s = batch / step. The batch is serving.maxNumSeqs, or fewer when the KV cache of that
  many sequences at this context does not fit next to the weights;
- prefill is compute-bound: 2 FLOPs per parameter per prompt token, tokens/s = FLOPs / (2 x params)
  (attention's context-quadratic FLOPs are left out: an upper bound, like every roofline);
- a request mix of p prompt and o output tokens takes p / prefill + o / decode slice-seconds, so the
  slice serves (p + o) / that many tokens/s (chunked prefill interleaves both on the same chips).
A slice has dp engines. Real serving reaches a fraction of the roofline (kernels, scheduling, padding
to compiled shapes); `SEED_EFFICIENCY` is that fraction for the autoscaler's seed only, an assumption
not measured here, which the online fit replaces as soon as the model serves traffic.

Chip figures: the TPU catalog's records (bandwidth and peak bf16 FLOPs per chip, each with its source).
Meshes count JAX devices: on TPU7x a chip is two devices, so tp devices are tp / devices-per-chip chips.
"""

from dataclasses import dataclass
from typing import Final

from datajax_operator.api.spec import DataJaxModelSpec
from datajax_operator.api.tpu import CATALOG
from datajax_operator.plan.catalog import Placement
from datajax_operator.plan.checks import HBM_USABLE_FRACTION, weight_bytes
from datajax_operator.plan.mesh import MeshPlan
from datajax_operator.plan.serving import kv_bytes_per_token


def performance_source(generation: str) -> str:
    """Where the chip figures of a generation come from: its TPU catalog record's source."""
    figures = CATALOG[generation].sources.get("bandwidthAndFlops", "")
    return f"TPU catalog (api/tpu_catalog.json) {generation}: {figures}"


SEED_EFFICIENCY: Final = 0.25
"""Share of the roofline a slice is assumed to serve at the SLO before any sample: an assumption (not
measured here); the autoscaler's fit replaces it with the model's own figures."""

DEFAULT_PROMPT_TOKENS: Final = 1000.0
DEFAULT_OUTPUT_TOKENS: Final = 200.0
"""The request mix `plan` reports the mixed rate at (the operator uses the measured mix instead)."""


@dataclass(frozen=True)
class Roofline:
    """Upper bounds on one slice's throughput, and what they rest on."""

    decode_tokens_per_second: float
    prefill_tokens_per_second: float
    batch: int
    """Sequences per engine the decode figure assumes (maxNumSeqs, or what the KV cache holds)."""
    context_tokens: int
    decode_bound: str
    """memory (HBM bandwidth) or compute (FLOPs)."""
    kv_bytes_per_token: int | None
    """None when the spec lacks the model-shape hints (the KV cache's reads are then left out)."""

    def mixed_tokens_per_second(self, prompt_tokens: float, output_tokens: float) -> float:
        """Prompt + output tokens/s for requests of this mix (both phases share the slice's chips)."""
        seconds = (
            prompt_tokens / self.prefill_tokens_per_second + output_tokens / self.decode_tokens_per_second
        )
        return (prompt_tokens + output_tokens) / seconds if seconds > 0 else 0.0


def roofline(
    spec: DataJaxModelSpec,
    placement: Placement,
    mesh: MeshPlan,
) -> Roofline | None:
    """The slice's roofline, or None when the spec does not say how large the model is
    (model.parametersBillions and model.dtype)."""
    m = spec.model
    weights = weight_bytes(m)
    if weights is None or m.parameters_billions is None:
        return None
    record = CATALOG[placement.generation]
    tp, dp = mesh.tensor_parallel, mesh.data_parallel
    parameters = m.parameters_billions * 1e9
    chips = tp / record.devices_per_chip
    bandwidth = chips * record.hbm_bandwidth_bytes_per_second
    flops = chips * record.peak_bf16_flops_per_chip
    # a sequence's mean context over its decode, for a request of the default mix
    context = int(min(m.max_model_len, DEFAULT_PROMPT_TOKENS + DEFAULT_OUTPUT_TOKENS / 2))
    kv_per_token = kv_bytes_per_token(m, tp)
    batch = spec.serving.max_num_seqs
    if kv_per_token is not None:
        room = placement.hbm_bytes_per_device * tp * HBM_USABLE_FRACTION - weights
        batch = max(1, min(batch, int(room // (context * kv_per_token)) if room > 0 else 1))
    memory_seconds = (weights + batch * context * (kv_per_token or 0)) / bandwidth
    compute_seconds = 2 * parameters * batch / flops
    step = max(memory_seconds, compute_seconds)
    return Roofline(
        decode_tokens_per_second=dp * batch / step,
        prefill_tokens_per_second=dp * flops / (2 * parameters),
        batch=batch,
        context_tokens=context,
        decode_bound="memory" if memory_seconds >= compute_seconds else "compute",
        kv_bytes_per_token=kv_per_token,
    )
