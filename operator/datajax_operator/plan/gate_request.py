"""The compile gate's request: what libtpu compiles for a plan, as a pure function of the plan and spec.

Shared by `validate-mesh --target tpu` (which runs the compile in a local interpreter with libtpu) and
the operator's `spec.plan.compileGate` (which runs it in a Job with the runtime image): both compile
the same request, so a verdict seen on a laptop is the one the cluster gets.
"""

import math
from typing import Any, Final

from datajax_operator.api.spec import DataJaxModelSpec
from datajax_operator.plan.catalog import generation_record
from datajax_operator.plan.checks import HBM_USABLE_FRACTION, KV_CACHE_FRACTION
from datajax_operator.plan.planner import Plan
from datajax_operator.plan.serving import kv_cache_bytes_per_token, kv_dtype_bytes
from datajax_operator.plan.wavespec import FLAG_KV_CACHE_DTYPE, FLAG_MAX_NUM_BATCHED_TOKENS

PAGE_SIZE: Final = 128
"""Tokens per KV-cache page. tpu-inference sizes pages itself; 128 keeps a page a whole number of
TPU tiles and only rounds the KV cache up to a page per sequence (it does not change the totals)."""

GATE_DTYPES: Final = ("bfloat16", "float16", "float32")
"""Weight dtypes the gate's program compiles (quantised layouts are tpu-inference's own)."""


COMPILE_ONLY_ENV: Final = {"JAX_PLATFORMS": "cpu", "ALLOW_MULTIPLE_LIBTPU_LOAD": "1"}
"""The environment of a compile-only process, wherever it runs (validate-mesh's child, the gate Job,
the tpu_stack probes): JAX on the CPU, since the program is compiled for a described topology
(`get_topology_desc`), not for a local TPU; and libtpu's machine-wide lock, which guards chips, waived —
a compile opens none, so two gates side by side must not exclude each other (the variable libtpu.so
reads; jax's own jax/_src/test_multiprocess.py sets it for several processes on one host)."""

NOMINAL_VOCAB: Final = 256
"""Rows of the embedding when the shapes are estimated from spec.model (which has no vocabulary size):
the program needs an embedding to look tokens up in (an empty one does not compile: "Slice size at
index 0 in gather op is out of range"). The real embedding's bytes are counted in the MLP instead, so
the weights are right, while the logits' temporaries are those of this small vocabulary: a
config.json (`validate-mesh --hf-config`) gives the real ones. 256 divides every model axis."""

SHARD_MULTIPLE: Final = 256
"""An estimated MLP width is rounded up to this, so every model axis (up to 256 devices) divides it."""


COMPILE_GATE_FIELD: Final = "spec.plan.compileGate"
"""The field a spec the gate cannot compile is reported against (plan's exit 2, SpecValid=False)."""


class GateError(ValueError):
    """The gate cannot be run as asked (missing shapes, unknown config, no interpreter); exit 2."""


def model_shape_from_spec(spec: DataJaxModelSpec) -> dict[str, Any]:
    """Shapes estimated from spec.model when no config.json is given.

    Attention is exact from heads, KV heads, head size and layers; the rest of the parameter count
    is put into the MLP (embeddings included), so the weight bytes are right though the split is not.
    """
    m = spec.model
    needed = {
        "attentionHeads": m.attention_heads,
        "kvHeads": m.kv_heads,
        "numLayers": m.num_layers,
        "headDim": m.head_dim,
        "parametersBillions": m.parameters_billions,
    }
    missing = [f"spec.model.{k}" for k, v in needed.items() if v is None]
    if missing:
        raise GateError(
            "the compile gate needs the model's shapes: set "
            + ", ".join(missing)
            + " (validate-mesh --target tpu also takes --hf-config CONFIG.json)"
        )
    if not (m.attention_heads and m.kv_heads and m.num_layers and m.head_dim and m.parameters_billions):
        raise GateError("spec.model shape hints must all be set")  # unreachable after the check above
    hidden = m.attention_heads * m.head_dim
    attention = hidden * (m.attention_heads + 2 * m.kv_heads) * m.head_dim + hidden * hidden
    rest = m.parameters_billions * 1e9 - m.num_layers * attention - NOMINAL_VOCAB * hidden
    per_layer = math.ceil(rest / (3 * hidden * m.num_layers))
    intermediate = max(SHARD_MULTIPLE, -(-per_layer // SHARD_MULTIPLE) * SHARD_MULTIPLE)
    return {
        "hidden": hidden,
        "intermediate": intermediate,
        "layers": m.num_layers,
        "heads": m.attention_heads,
        "kvHeads": m.kv_heads,
        "headDim": m.head_dim,
        "vocab": NOMINAL_VOCAB,
        "tiedEmbeddings": True,
        "source": "estimated from spec.model (embeddings counted in the MLP, a nominal vocabulary)",
    }


def _decided(plan: Plan, flag: str) -> Any:
    return next(d.value for d in plan.decisions if d.flag == flag)


def kv_cache_tokens(plan: Plan, shape: dict[str, Any], kv_bytes: int, max_model_len: int) -> int:
    """Tokens of KV cache per engine the planner's HBM check reserves (KV_CACHE_FRACTION of each chip),
    and never less than one sequence of max_model_len, which vLLM requires to start."""
    tp = plan.mesh.tensor_parallel
    per_engine = kv_cache_bytes_per_token(shape["layers"], shape["kvHeads"], shape["headDim"], kv_bytes, tp)
    per_token_per_chip = per_engine / tp
    # Per JAX device: a TPU7x chip is two devices, each with half the chip's HBM (the TPU catalog).
    reserve = KV_CACHE_FRACTION * plan.placement.hbm_bytes_per_device
    return max(max_model_len, int(reserve // per_token_per_chip))


STAGE_TOPOLOGIES: Final = {2: {1: "1x1", 4: "2x2", 8: "2x4"}, 3: {1: "1x1x1", 4: "2x2x1", 8: "2x2x2"}}
"""A topology name for one pipeline stage's chips, by the generation's topology dimensions (the shapes
of one host: GKE's single-host slices, DESIGN §4)."""


def stage_target(plan: Plan, shape: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """What one compile covers: the whole slice, or, when the plan pipelines across hosts, ONE stage —
    its share of the layers on one stage's chips (each stage holds only its layers and their KV cache;
    stages are alike, so one compile speaks for all). Returns (topology, chips, shape)."""
    p, pp = plan.placement, plan.mesh.pipeline_parallel
    if pp == 1:
        return p.topology, p.chips, shape
    stage_chips = p.chips // pp
    dims = p.topology.count("x") + 1
    topology = STAGE_TOPOLOGIES.get(dims, {}).get(stage_chips)
    if topology is None:
        raise GateError(
            f"a pipeline stage of {stage_chips} chip(s) of {p.generation} {p.topology} has no single-host "
            "topology to compile for"
        )
    layers = -(-int(shape["layers"]) // pp)  # the largest stage: stages take whole layers
    return topology, stage_chips, shape | {"layers": layers}


def gate_request(plan: Plan, spec: DataJaxModelSpec, shape: dict[str, Any]) -> dict[str, Any]:
    """The child's request: everything it compiles, from the plan (one stage of a pipelined plan)."""
    dtype = spec.model.dtype or shape.get("dtype") or "bfloat16"
    if dtype not in GATE_DTYPES:
        raise GateError(
            f"spec.model.dtype {dtype}: the gate compiles bfloat16, float16 and float32 weights "
            "(quantised layouts are tpu-inference's own)"
        )
    kv_dtype = str(_decided(plan, FLAG_KV_CACHE_DTYPE))
    kv_bytes = 1 if kv_dtype == "fp8" else kv_dtype_bytes(dtype)
    p = plan.placement
    topology, chips, shape = stage_target(plan, shape)
    model = {k: v for k, v in shape.items() if k not in ("source", "dtype")} | {"dtype": dtype}
    return {
        # The catalog's generation names are libtpu's own: get_topology_desc("tpu7x:2x2x1") (likewise
        # v5e, v6e, v5p) is accepted, and "v7x:..." refused as an invalid TPU external name (jax 0.11.0,
        # libtpu 0.0.44, the tpu-env of `make tpu-env`).
        "topology": f"{p.generation}:{topology}",
        "mesh": {"data": plan.mesh.data_parallel, "model": plan.mesh.tensor_parallel},
        "model": model,
        "serving": {
            "maxNumSeqs": spec.serving.max_num_seqs,
            "maxNumBatchedTokens": int(_decided(plan, FLAG_MAX_NUM_BATCHED_TOKENS)),
            "maxModelLen": spec.model.max_model_len,
            "kvCacheDtype": kv_dtype,
            "pageSize": PAGE_SIZE,
        },
        "kvCacheTokens": kv_cache_tokens(plan, shape, kv_bytes, spec.model.max_model_len),
        "hbmBytesPerChip": generation_record(p.generation).hbm_bytes_per_chip,
        "chips": chips,
        "usableFraction": HBM_USABLE_FRACTION,
    }
