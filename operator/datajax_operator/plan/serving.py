"""The serving flags the wave spec informs, decided for one spec on one placement.

`derive_serving_defaults` (plan/wavespec.py) is generic over its inputs; this module reads them off a
DataJaxModel spec. A field the user left unset is `None` in the spec (the CRD carries no default for
it, so the API server does not fill one in), which is how the wave spec knows it may decide: explicit
values always win. The KV-cache budget needs the model's shape (layers, KV heads, head size, weights);
without those hints the KV decision stays at the model dtype and says why.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datajax_operator.api.spec import DataJaxModelSpec, ModelSource
from datajax_operator.plan.catalog import Placement, generation_record
from datajax_operator.plan.checks import weight_bytes
from datajax_operator.plan.mesh import MeshPlan
from datajax_operator.plan.problems import Problem
from datajax_operator.plan.wavespec import (
    Decision,
    KvBudget,
    ServingInputs,
    WaveSpec,
    WaveSpecError,
    derive_serving_defaults,
    parse_wavespec,
    serving_findings,
)

WAVE_SPEC_FIELD = "spec.plan.waveSpecRef"


@dataclass(frozen=True)
class ServingPlan:
    """The decided serving flags (each with its reason) and what the wave spec found wrong with them."""

    decisions: tuple[Decision, ...]
    problems: tuple[Problem, ...]

    def decision(self, flag: str) -> Decision:
        """The decision for one vLLM flag (every flag derive_serving_defaults covers has one)."""
        return next(d for d in self.decisions if d.flag == flag)


def kv_dtype_bytes(weight_dtype: str) -> int:
    """Bytes per KV element at --kv-cache-dtype auto: the activation dtype, bf16 for quantised weights."""
    return 4 if weight_dtype == "float32" else 2


def kv_cache_bytes_per_token(layers: int, kv_heads: int, head_dim: int, element_bytes: int, tp: int) -> int:
    """KV-cache bytes per token of one engine over tp devices: K and V of every layer. KV heads are split
    over tp; when there are fewer KV heads than tp, vLLM replicates them so every device holds one, hence
    max(kvHeads, tp)."""
    return 2 * layers * max(kv_heads, tp) * head_dim * element_bytes


def kv_bytes_per_token(model: ModelSource, tp: int) -> int | None:
    """KV-cache bytes per token of one engine at --kv-cache-dtype auto; None without the shape hints."""
    if not (model.num_layers and model.kv_heads and model.head_dim and model.dtype):
        return None
    element = kv_dtype_bytes(model.dtype)
    return kv_cache_bytes_per_token(model.num_layers, model.kv_heads, model.head_dim, element, tp)


def kv_budget(spec: DataJaxModelSpec, placement: Placement, mesh: MeshPlan) -> KvBudget | None:
    """HBM, weights and KV bytes per token of one data-parallel engine, when the spec hints all of them.

    An engine holds the full weights over its tp x pp devices.
    """
    m = spec.model
    weights = weight_bytes(m)
    per_token = kv_bytes_per_token(m, mesh.tensor_parallel)
    if weights is None or per_token is None or m.dtype is None:
        return None
    return KvBudget(
        hbm_bytes=placement.hbm_bytes_per_device * mesh.tensor_parallel * mesh.pipeline_parallel,
        weight_bytes=int(weights),
        kv_bytes_per_token=per_token,
        kv_dtype_bytes=kv_dtype_bytes(m.dtype),
    )


def serving_inputs(spec: DataJaxModelSpec, placement: Placement, mesh: MeshPlan) -> ServingInputs:
    """The spec values the decisions read; `None` where the user left the choice to the wave spec."""
    serving = spec.serving
    return ServingInputs(
        max_model_len=spec.model.max_model_len,
        max_num_seqs=serving.max_num_seqs,
        prefix_caching=serving.prefix_caching,
        max_num_batched_tokens=serving.chunked_prefill.max_num_batched_tokens,
        kv_cache_dtype=serving.kv_cache_dtype,
        kv_budget=kv_budget(spec, placement, mesh),
        default_max_num_batched_tokens=generation_record(
            placement.generation
        ).vllm_default_max_num_batched_tokens,
        generation=placement.generation,
    )


def read_wave_spec(document: Mapping[str, Any] | None) -> tuple[WaveSpec | None, list[Problem]]:
    """Parse the exporter's JSON; a bad document is a problem on the wave-spec reference, field by field."""
    if document is None:
        return None, []
    try:
        return parse_wavespec(document), []
    except WaveSpecError as err:
        return None, [Problem(f"{WAVE_SPEC_FIELD} ({p.field})", p.message) for p in err.problems]


def plan_serving(
    spec: DataJaxModelSpec, placement: Placement, mesh: MeshPlan, wave_spec: WaveSpec | None
) -> ServingPlan:
    """Decide every wave-spec-informed flag for this spec and collect its errors and warnings."""
    inputs = serving_inputs(spec, placement, mesh)
    return ServingPlan(
        decisions=tuple(derive_serving_defaults(wave_spec, inputs)),
        problems=tuple(serving_findings(wave_spec, inputs)),
    )
