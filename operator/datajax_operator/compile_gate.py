"""`validate-mesh --target tpu`: size the plan with libtpu's TPU compiler, before a TPU is paid for.

The operator's own environment has neither JAX's TPU backend nor libtpu, so the compile runs in
another interpreter that has them: `--python`, else `$DATAJAX_TPU_PYTHON`, else the tpu-env that
`make tpu-env` builds (tools/tpu-env.sh). That interpreter runs `datajax_runtime.compile_gate` from
this checkout (put on its path through a private directory, so nothing of the operator's own
site-packages shadows the tpu-env's JAX). The request carries everything the plan implies: the slice
as libtpu names it, the mesh, the model's shapes (a Hugging Face config.json, or estimates from
spec.model), the serving sizes and the KV cache the planner reserves.

Outside the pure layers: it starts a process. The request itself is built by pure functions.
"""

import importlib.util
import json
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from datajax_operator.api.spec import DataJaxModelSpec
from datajax_operator.plan.catalog import generation_record
from datajax_operator.plan.checks import HBM_USABLE_FRACTION, KV_CACHE_FRACTION
from datajax_operator.plan.planner import Plan
from datajax_operator.plan.serving import kv_cache_bytes_per_token, kv_dtype_bytes
from datajax_operator.plan.wavespec import FLAG_KV_CACHE_DTYPE, FLAG_MAX_NUM_BATCHED_TOKENS

TPU_PYTHON_ENV: Final = "DATAJAX_TPU_PYTHON"
EXIT_FITS, EXIT_DOES_NOT_FIT, EXIT_INVALID = 0, 1, 2


PAGE_SIZE: Final = 128
"""Tokens per KV-cache page. tpu-inference sizes pages itself; 128 keeps a page a whole number of
TPU tiles and only rounds the KV cache up to a page per sequence (it does not change the totals)."""

LLAMA_SHAPED: Final = frozenset(
    {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}
)
"""Architectures whose decoder the gate's program reproduces (RMSNorm, GQA attention, SwiGLU MLP)."""

GATE_DTYPES: Final = ("bfloat16", "float16", "float32")
"""Weight dtypes the gate's program compiles (quantised layouts are tpu-inference's own)."""


class GateError(ValueError):
    """The gate cannot be run as asked (missing shapes, unknown config, no interpreter); exit 2."""


@dataclass(frozen=True)
class Verdict:
    """What the child reported and how it ended."""

    exit_code: int
    document: dict[str, Any]


def default_tpu_python() -> Path:
    """Where `make tpu-env` puts the interpreter."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "datajax-operator" / "tpu-env" / "bin" / "python"


def find_tpu_python(explicit: str | None) -> str:
    """The interpreter to compile with: --python, $DATAJAX_TPU_PYTHON, or the tpu-env."""
    candidate = explicit or os.environ.get(TPU_PYTHON_ENV) or str(default_tpu_python())
    if not Path(candidate).is_file() or not os.access(candidate, os.X_OK):
        raise GateError(
            f"--target tpu compiles with libtpu in a Python that has JAX and libtpu; {candidate} is not "
            f"one: run `make tpu-env` (tools/tpu-env.sh), or give --python / ${TPU_PYTHON_ENV}"
        )
    return candidate


def model_shape_from_hf_config(path: str) -> dict[str, Any]:
    """The decoder's shapes from a Hugging Face config.json."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise GateError(f"--hf-config {path}: {err}") from None
    archs = config.get("architectures") or []
    if not set(archs) & LLAMA_SHAPED:
        raise GateError(
            f"--hf-config {path}: architectures {archs} are not a Llama-shaped decoder the gate compiles "
            f"({', '.join(sorted(LLAMA_SHAPED))})"
        )
    try:
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        return {
            "hidden": hidden,
            "intermediate": int(config["intermediate_size"]),
            "layers": int(config["num_hidden_layers"]),
            "heads": heads,
            "kvHeads": int(config.get("num_key_value_heads", heads)),
            "headDim": int(config.get("head_dim") or hidden // heads),
            "vocab": int(config["vocab_size"]),
            "tiedEmbeddings": bool(config.get("tie_word_embeddings", False)),
            "dtype": str(config.get("torch_dtype") or config.get("dtype") or "bfloat16").removeprefix(
                "torch."
            ),
            "source": f"config.json {path}",
        }
    except (KeyError, TypeError, ValueError) as err:
        raise GateError(f"--hf-config {path}: missing or bad field {err}") from None


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
            "--target tpu needs the model's shapes: give --hf-config CONFIG.json, or set "
            + ", ".join(missing)
        )
    if not (m.attention_heads and m.kv_heads and m.num_layers and m.head_dim and m.parameters_billions):
        raise GateError("spec.model shape hints must all be set")  # unreachable after the check above
    hidden = m.attention_heads * m.head_dim
    attention = hidden * (m.attention_heads + 2 * m.kv_heads) * m.head_dim + hidden * hidden
    rest = m.parameters_billions * 1e9 - m.num_layers * attention
    intermediate = max(1, math.ceil(rest / (3 * hidden * m.num_layers)))
    return {
        "hidden": hidden,
        "intermediate": intermediate,
        "layers": m.num_layers,
        "heads": m.attention_heads,
        "kvHeads": m.kv_heads,
        "headDim": m.head_dim,
        "vocab": 0,
        "tiedEmbeddings": True,
        "source": "estimated from spec.model (embeddings counted in the MLP)",
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


def _runtime_package_dir() -> Path:
    found = importlib.util.find_spec("datajax_runtime")
    if found is None or not found.submodule_search_locations:
        raise GateError("datajax_runtime (the runtime package with the compile program) is not installed")
    return Path(next(iter(found.submodule_search_locations)))


def run(request: dict[str, Any], python: str, timeout: float) -> Verdict:
    """Run the compile in `python`; exit code 0 fits, 1 does not fit, 2 the child refused the request."""
    with tempfile.TemporaryDirectory(prefix="datajax-gate-") as path:
        # Only datajax_runtime goes on the child's path: the operator's site-packages (its own JAX)
        # would shadow the tpu-env's.
        (Path(path) / "datajax_runtime").symlink_to(_runtime_package_dir(), target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["PYTHONPATH"] = path
        env.setdefault("JAX_PLATFORMS", "cpu")  # the compile targets the topology, not a local TPU
        # libtpu takes a machine-wide lock (/tmp/libtpu_lockfile) meant for the chips; a compile-only
        # process opens no chip, so two gates (or a gate beside a test) must not exclude each other.
        env.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
        try:
            done = subprocess.run(
                [python, "-m", "datajax_runtime.compile_gate"],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GateError(f"the compile did not finish in {timeout:g}s (--timeout)") from None
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise GateError(f"{python} -m datajax_runtime.compile_gate failed: " + " | ".join(tail)) from None
    if done.returncode == EXIT_INVALID or "error" in document:
        raise GateError(str(document.get("error", document)))
    return Verdict(done.returncode, document)


def _gb(value: int | None) -> str:
    return "—" if value is None else f"{value / 1e9:.2f} GB"


def summary(name: str, verdict: dict[str, Any]) -> str:
    """The table (`-o table`): verdict, figures per device, the steps' compile times."""
    per = verdict["perDevice"]
    program = verdict["program"]
    lines = [
        f"{name}: {verdict['target']} ({verdict['devices']} x {verdict['deviceKind']}), mesh "
        f"data={program['mesh']['data']} x model={program['mesh']['model']}: "
        f"{'FITS' if verdict['fits'] else 'DOES NOT FIT'}",
        f"  per device: arguments {_gb(per['argumentBytes'])}, temporaries {_gb(per['temporaryBytes'])}, "
        f"outputs {_gb(per['outputBytes'])}; peak {_gb(verdict['peakBytesPerDevice'])} of "
        f"{_gb(verdict['usableBytesPerDevice'])} usable ({_gb(verdict['hbmBytesPerDevice'])} HBM)",
        f"  program: {program['model']}; {program['layers']} layers, KV cache "
        f"{program['kvCacheTokensPerEngine']:,} tokens/engine ({program['kvCacheDtype']}); "
        + ", ".join(
            f"{s} {'REFUSED' if 'compilerRefused' in v else 'compiled'} in {v['compileSeconds']:.1f}s"
            for s, v in program["steps"].items()
        )
        + (
            f" (side by side: {program['compileWallSeconds']:.1f}s wall, "
            f"{program['compileCpuSeconds']:.1f}s CPU)"
            if "compileWallSeconds" in program
            else ""
        ),
        "  compiler: " + ", ".join(f"{k} {v}" for k, v in verdict["compiler"].items()),
    ]
    lines += [f"  {s}: {v['compilerRefused']}" for s, v in program["steps"].items() if "compilerRefused" in v]
    if not verdict["fits"]:
        lines.append("  largest arrays per device:")
        lines += [
            f"    {a['name']} {a['dtype']}{a['shape']}: {_gb(a['bytesPerDevice'])}"
            + (f" ({a['layers']} layers, {_gb(a['bytesPerDevicePerLayer'])} each)" if "layers" in a else "")
            for a in verdict["largestArrays"]
        ]
    return "\n".join(lines)
