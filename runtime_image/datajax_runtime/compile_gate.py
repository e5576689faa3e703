"""The TPU compile gate: compile a model's serving program with libtpu's compiler, without a TPU.

`python -m datajax_runtime.compile_gate` reads one request (JSON, stdin) and writes one verdict (JSON,
stdout). It runs in an interpreter that has JAX and libtpu (the runtime image, or the tpu-env that
`make tpu-env` builds); the operator, which has neither, starts it as a child process
(`datajax-operator validate-mesh --target tpu`).

What is compiled, at the model's real size and nothing downloaded: every weight as an abstract sharded
array (`jax.ShapeDtypeStruct` with a `NamedSharding`) on a mesh ('data', 'model') = (dp, tp) of the
devices that `jax.experimental.topologies.get_topology_desc` describes for the planned slice; the paged
KV cache the plan implies; and two steps of one engine per data-parallel group, as vLLM's TPU worker
runs them: a decode step (one token for each of max_num_seqs sequences) and a chunked-prefill step
(max_num_batched_tokens tokens of one sequence). The program is a Llama-shaped decoder written here
(RMSNorm, rotary attention with grouped KV heads read from the paged cache, SwiGLU MLP), the same
shapes and shardings as tpu-inference's JAX Llama and Qwen2 models but not their code: their
attention is a Pallas kernel (ragged paged attention), whose working set is smaller than the plain
attention here, so the temporaries reported are an upper bound of that part. `compiled.memory_analysis()`
gives the per-device argument, temporary and output bytes that decide `fits`.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


class GateInputError(ValueError):
    """The request cannot be compiled as asked (bad shapes, topology the compiler does not know)."""


@dataclass(frozen=True)
class ModelShape:
    """The decoder's shapes: a Hugging Face config.json's fields, or estimates from the spec."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    dtype: str

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ModelShape:
        return cls(
            hidden=int(doc["hidden"]),
            intermediate=int(doc["intermediate"]),
            layers=int(doc["layers"]),
            heads=int(doc["heads"]),
            kv_heads=int(doc["kvHeads"]),
            head_dim=int(doc["headDim"]),
            vocab=int(doc["vocab"]),
            tied_embeddings=bool(doc.get("tiedEmbeddings", False)),
            dtype=str(doc["dtype"]),
        )


@dataclass(frozen=True)
class GateRequest:
    """One compile: where (topology), how split (mesh), what (model) and how much work (serving)."""

    topology: str
    """`get_topology_desc` name, e.g. v6e:2x4."""
    data: int
    model_axis: int
    model: ModelShape
    max_num_seqs: int
    max_num_batched_tokens: int
    max_model_len: int
    kv_cache_dtype: str
    page_size: int
    kv_cache_tokens: int
    """Tokens of KV cache per data-parallel engine."""
    hbm_bytes_per_chip: int
    chips: int
    usable_fraction: float

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> GateRequest:
        serving = doc["serving"]
        return cls(
            topology=str(doc["topology"]),
            data=int(doc["mesh"]["data"]),
            model_axis=int(doc["mesh"]["model"]),
            model=ModelShape.from_json(doc["model"]),
            max_num_seqs=int(serving["maxNumSeqs"]),
            max_num_batched_tokens=int(serving["maxNumBatchedTokens"]),
            max_model_len=int(serving["maxModelLen"]),
            kv_cache_dtype=str(serving["kvCacheDtype"]),
            page_size=int(serving["pageSize"]),
            kv_cache_tokens=int(doc["kvCacheTokens"]),
            hbm_bytes_per_chip=int(doc["hbmBytesPerChip"]),
            chips=int(doc["chips"]),
            usable_fraction=float(doc["usableFraction"]),
        )


def effective_kv_heads(kv_heads: int, tp: int) -> int:
    """KV heads as laid out on the mesh: with fewer KV heads than tensor-parallel devices, each is
    replicated until every device holds one (tpu-inference 0.29.0
    `tpu_inference/layers/common/attention_interface.py`: "GQA/MQA where num_kv_heads < tp_size",
    `jnp.repeat` by tp_size // num_kv_heads; read in the tpu-env). vLLM's own layers: not verified here."""
    if kv_heads % tp == 0:
        return kv_heads
    if tp % kv_heads == 0:
        return tp
    raise GateInputError(f"{kv_heads} KV heads cannot be split over a model axis of {tp}")


def _topology_devices(topology: str) -> list[Any]:
    from jax.experimental import topologies

    try:
        desc = topologies.get_topology_desc(topology, platform="tpu")
    except Exception as err:  # libtpu's error says which names it knows
        raise GateInputError(f"libtpu does not describe topology {topology!r}: {err}") from None
    return list(desc.devices)


def build_program(request: GateRequest, devices: list[Any]) -> dict[str, Any]:
    """The abstract arguments and the two jitted steps, over a mesh of `devices`."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    pspec: Any = PartitionSpec  # Any: JAX's constructors are untyped for mypy
    shape_dtype: Any = jax.ShapeDtypeStruct

    m, dp, tp = request.model, request.data, request.model_axis
    if dp * tp != len(devices):
        raise GateInputError(
            f"the mesh data={dp} x model={tp} spans {dp * tp} devices, but {request.topology} has "
            f"{len(devices)}"
        )
    if m.heads % tp:
        raise GateInputError(f"{m.heads} attention heads cannot be split over a model axis of {tp}")
    kvh = effective_kv_heads(m.kv_heads, tp)
    mesh = Mesh(np.array(devices).reshape(dp, tp), ("data", "model"))
    wdtype = {"bfloat16": jnp.bfloat16, "float16": jnp.float16, "float32": jnp.float32}.get(m.dtype)
    if wdtype is None:
        raise GateInputError(
            f"weights in {m.dtype} are not compiled by this gate (bfloat16, float16, float32)"
        )
    cdtype = jnp.float8_e4m3fn if request.kv_cache_dtype == "fp8" else wdtype
    pages_per_seq = math.ceil(request.max_model_len / request.page_size)
    num_pages = max(math.ceil(request.kv_cache_tokens / request.page_size), pages_per_seq)
    b, t, s, d, hd = (
        request.max_num_seqs,
        request.max_num_batched_tokens,
        request.page_size,
        m.hidden,
        m.head_dim,
    )

    def arg(shape: tuple[int, ...], dtype: Any, spec: Any) -> Any:
        return shape_dtype(shape, dtype, sharding=NamedSharding(mesh, spec))

    layer = (m.layers,)
    params: dict[str, Any] = {
        "embed": arg((m.vocab, d), wdtype, pspec("model", None)),
        "wq": arg((*layer, d, m.heads * hd), wdtype, pspec(None, None, "model")),
        "wk": arg((*layer, d, kvh * hd), wdtype, pspec(None, None, "model")),
        "wv": arg((*layer, d, kvh * hd), wdtype, pspec(None, None, "model")),
        "wo": arg((*layer, m.heads * hd, d), wdtype, pspec(None, "model", None)),
        "w_gate": arg((*layer, d, m.intermediate), wdtype, pspec(None, None, "model")),
        "w_up": arg((*layer, d, m.intermediate), wdtype, pspec(None, None, "model")),
        "w_down": arg((*layer, m.intermediate, d), wdtype, pspec(None, "model", None)),
        "attn_norm": arg((*layer, d), wdtype, pspec()),
        "mlp_norm": arg((*layer, d), wdtype, pspec()),
        "final_norm": arg((d,), wdtype, pspec()),
    }
    if not m.tied_embeddings:
        params["lm_head"] = arg((d, m.vocab), wdtype, pspec(None, "model"))
    # One cache per data-parallel engine: [engine, layer, k/v, page, slot, kv head, head dim].
    kv_cache = arg(
        (dp, m.layers, 2, num_pages, s, kvh, hd), cdtype, pspec("data", None, None, None, None, "model")
    )
    batch = pspec("data")
    decode_args = {
        "tokens": arg((dp, b), jnp.int32, batch),
        "positions": arg((dp, b), jnp.int32, batch),
        "block_tables": arg((dp, b, pages_per_seq), jnp.int32, batch),
    }
    prefill_args = {
        "tokens": arg((dp, t), jnp.int32, batch),
        "start": arg((dp,), jnp.int32, batch),
        "block_table": arg((dp, pages_per_seq), jnp.int32, batch),
    }
    group = m.heads // kvh  # kvh divides heads: both kv_heads and tp do

    def rms(x: Any, w: Any) -> Any:
        x32 = x.astype(jnp.float32)
        return (x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + 1e-6)).astype(x.dtype) * w

    def rope(x: Any, pos: Any) -> Any:  # x [..., heads, hd], pos [...]
        half = hd // 2
        freq = 1.0 / (500000.0 ** (jnp.arange(half, dtype=jnp.float32) / half))
        angle = pos[..., None, None].astype(jnp.float32) * freq
        x1, x2 = x[..., :half].astype(jnp.float32), x[..., half : 2 * half].astype(jnp.float32)
        out = jnp.concatenate(
            [x1 * jnp.cos(angle) - x2 * jnp.sin(angle), x2 * jnp.cos(angle) + x1 * jnp.sin(angle)], -1
        )
        return out.astype(x.dtype)

    def attend(q: Any, keys: Any, values: Any, q_pos: Any) -> Any:
        """q [n, heads, hd] at positions q_pos [n] over keys/values [len, kvh, hd] of one sequence."""
        n = q.shape[0]
        qg = q.reshape(n, kvh, group, hd)
        scores = jnp.einsum("nkgh,lkh->kgnl", qg, keys.astype(q.dtype)).astype(jnp.float32) / math.sqrt(hd)
        mask = jnp.arange(keys.shape[0])[None, :] <= q_pos[:, None]
        probs = jax.nn.softmax(jnp.where(mask, scores, -1e30), axis=-1).astype(q.dtype)
        out = jnp.einsum("kgnl,lkh->nkgh", probs, values.astype(q.dtype))
        return out.reshape(n, m.heads * hd)

    def mlp(x: Any, lp: dict[str, Any]) -> Any:
        h = rms(x, lp["mlp_norm"])
        return (jax.nn.silu(h @ lp["w_gate"]) * (h @ lp["w_up"])) @ lp["w_down"]

    def layer_params(p: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in p.items() if k not in ("embed", "final_norm", "lm_head")}

    def logits_of(p: dict[str, Any], x: Any) -> Any:
        head = p["embed"].T if m.tied_embeddings else p["lm_head"]
        return rms(x, p["final_norm"]) @ head

    layer_index = jnp.arange(m.layers, dtype=jnp.int32)

    def write_kv(cache: Any, i: Any, where: tuple[Any, Any], k: Any, v: Any) -> Any:
        """The new tokens' keys and values into layer i's (pages, slots), in place (the cache is carried)."""
        pages, slots = where
        return cache.at[i, 0, pages, slots].set(k.astype(cdtype)).at[i, 1, pages, slots].set(v.astype(cdtype))

    def layers(p: dict[str, Any], cache: Any, x: Any, positions: Any, where: Any, *, attention: Any) -> Any:
        """The decoder layers over x [n, d] at positions [n]: each writes the new keys and values at
        `where` (pages, slots), then attends with `attention(cache, i, q)` over layer i of the cache."""
        n = x.shape[0]

        def one_layer(carry: tuple[Any, Any], xs: tuple[dict[str, Any], Any]) -> tuple[Any, None]:
            (x, cache), (lp, i) = carry, xs
            h = rms(x, lp["attn_norm"])
            q = rope((h @ lp["wq"]).reshape(n, m.heads, hd), positions)
            k = rope((h @ lp["wk"]).reshape(n, kvh, hd), positions)
            v = (h @ lp["wv"]).reshape(n, kvh, hd)
            cache = write_kv(cache, i, where, k, v)
            x = x + attention(cache, i, q) @ lp["wo"]
            return (x + mlp(x, lp), cache), None

        (x, cache), _ = jax.lax.scan(one_layer, (x, cache), (layer_params(p), layer_index))
        return x, cache

    def decode_engine(p: dict[str, Any], cache: Any, tokens: Any, positions: Any, tables: Any) -> Any:
        x = p["embed"][tokens]
        pages = jnp.take_along_axis(tables, (positions // s)[:, None], axis=1)[:, 0]
        slots = positions % s

        def attention(cache: Any, i: Any, q: Any) -> Any:
            # Every sequence's pages, as ragged paged attention reads them (here gathered whole).
            keys = cache[i, 0][tables].reshape(b, pages_per_seq * s, kvh, hd)
            values = cache[i, 1][tables].reshape(b, pages_per_seq * s, kvh, hd)
            return jax.vmap(attend)(q[:, None], keys, values, positions[:, None])[:, 0]

        x, cache = layers(p, cache, x, positions, (pages, slots), attention=attention)
        return jnp.argmax(logits_of(p, x), axis=-1).astype(jnp.int32), cache

    def prefill_engine(p: dict[str, Any], cache: Any, tokens: Any, start: Any, table: Any) -> Any:
        positions = start + jnp.arange(t, dtype=jnp.int32)
        x = p["embed"][tokens]
        pages, slots = table[positions // s], positions % s

        def attention(cache: Any, i: Any, q: Any) -> Any:
            keys = cache[i, 0][table].reshape(pages_per_seq * s, kvh, hd)
            values = cache[i, 1][table].reshape(pages_per_seq * s, kvh, hd)
            return attend(q, keys, values, positions)

        x, cache = layers(p, cache, x, positions, (pages, slots), attention=attention)
        return jnp.argmax(logits_of(p, x[-1:]), axis=-1).astype(jnp.int32), cache

    decode = jax.jit(jax.vmap(decode_engine, in_axes=(None, 0, 0, 0, 0)), donate_argnums=(1,))
    prefill = jax.jit(jax.vmap(prefill_engine, in_axes=(None, 0, 0, 0, 0)), donate_argnums=(1,))
    return {
        "mesh": mesh,
        "params": params,
        "kv_cache": kv_cache,
        "kv_heads": kvh,
        "num_pages": num_pages,
        "layers": m.layers,
        "stacked": {"kv_cache", *(f"params.{k}" for k in layer_params(params))},
        "steps": {
            "decode": (decode, (params, kv_cache, *decode_args.values())),
            "prefill": (prefill, (params, kv_cache, *prefill_args.values())),
        },
    }


def _per_device_bytes(value: Any) -> int:
    shard = value.sharding.shard_shape(value.shape)
    return int(math.prod(shard)) * int(value.dtype.itemsize)


def largest_arrays(program: dict[str, Any], count: int = 5) -> list[dict[str, Any]]:
    """The biggest arguments per device, to name when the program does not fit.

    The per-layer weights and the KV cache are single arrays stacked over the layers (the step scans
    them), so each also says how many layers it stacks and what one layer's slice costs per device."""
    named = {f"params.{k}": v for k, v in program["params"].items()}
    named["kv_cache"] = program["kv_cache"]
    ranked = sorted(named.items(), key=lambda kv: -_per_device_bytes(kv[1]))[:count]
    found = []
    for n, v in ranked:
        entry = {
            "name": n,
            "shape": list(v.shape),
            "dtype": str(v.dtype),
            "bytesPerDevice": _per_device_bytes(v),
        }
        if n in program["stacked"]:
            entry["layers"] = program["layers"]
            entry["bytesPerDevicePerLayer"] = entry["bytesPerDevice"] // program["layers"]
        found.append(entry)
    return found


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for dist in ("jax", "jaxlib", "libtpu"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "absent"
    return found


def compile_step(fn: Any, args: tuple[Any, ...], arguments: int) -> dict[str, Any]:
    """One step's figures from `memory_analysis()`, or the compiler's refusal when it cannot fit."""
    t0 = time.monotonic()
    try:
        compiled = fn.lower(*args).compile()
    except Exception as err:  # the TPU compiler refuses a program that cannot fit a device's HBM
        if "RESOURCE_EXHAUSTED" not in str(err):
            raise
        return {
            "argumentBytes": arguments,
            "temporaryBytes": None,
            "outputBytes": None,
            "peakBytes": None,
            "compilerRefused": str(err).strip().splitlines()[-1],
            "compileSeconds": round(time.monotonic() - t0, 3),
        }
    seconds = time.monotonic() - t0
    mem = compiled.memory_analysis()
    figures: dict[str, Any] = {
        "argumentBytes": int(mem.argument_size_in_bytes),
        "temporaryBytes": int(mem.temp_size_in_bytes),
        "outputBytes": int(mem.output_size_in_bytes),
        "aliasBytes": int(mem.alias_size_in_bytes),
        "generatedCodeBytes": int(mem.generated_code_size_in_bytes),
    }
    figures["peakBytes"] = (
        figures["argumentBytes"]
        + figures["outputBytes"]
        - figures["aliasBytes"]
        + figures["temporaryBytes"]
        + figures["generatedCodeBytes"]
    )
    figures["compileSeconds"] = round(seconds, 3)
    return figures


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_gate(request: GateRequest) -> dict[str, Any]:
    """Compile both steps; the verdict in the DESIGN §6 shape (plus per-step detail).

    The two compiles are independent and libtpu's compiler runs them with the GIL released, so they
    run side by side in two threads: on a machine with two free cores the wall time is that of the
    slower step, not the sum (the CPU time is the same; `compileCpuSeconds` reports it)."""
    devices = _topology_devices(request.topology)
    program = build_program(request, devices)
    # A chip may hold more than one device (TensorCore) the compiler targets: HBM splits among them.
    hbm_per_device = request.hbm_bytes_per_chip * request.chips // len(devices)
    usable = int(hbm_per_device * request.usable_fraction)
    arguments = sum(_per_device_bytes(a) for a in [*program["params"].values(), program["kv_cache"]])
    wall0, cpu0 = time.monotonic(), _cpu_seconds()
    with ThreadPoolExecutor(max_workers=len(program["steps"])) as pool:
        running = {
            name: pool.submit(compile_step, fn, args, arguments)
            for name, (fn, args) in program["steps"].items()
        }
        steps: dict[str, Any] = {name: future.result() for name, future in running.items()}
    compile_wall, compile_cpu = time.monotonic() - wall0, _cpu_seconds() - cpu0

    def largest(key: str) -> int | None:
        known = [step[key] for step in steps.values() if step[key] is not None]
        return max(known) if known else None

    per_device = {key: largest(key) for key in ("argumentBytes", "temporaryBytes", "outputBytes")}
    peak = largest("peakBytes")
    refused = any("compilerRefused" in step for step in steps.values())
    m = request.model
    return {
        "fits": not refused and peak is not None and peak <= usable,
        "devices": len(devices),
        "deviceKind": str(devices[0].device_kind),
        "perDevice": per_device,
        "peakBytesPerDevice": peak,
        "hbmBytesPerDevice": hbm_per_device,
        "usableBytesPerDevice": usable,
        "compiler": _versions(),
        "target": request.topology,
        "program": {
            "model": "Llama-shaped decoder (datajax_runtime.compile_gate), not tpu-inference's model code",
            "mesh": {"data": request.data, "model": request.model_axis},
            "layers": m.layers,
            "hidden": m.hidden,
            "intermediate": m.intermediate,
            "heads": m.heads,
            "kvHeads": m.kv_heads,
            "kvHeadsOnMesh": program["kv_heads"],
            "headDim": m.head_dim,
            "vocab": m.vocab,
            "weightsDtype": m.dtype,
            "kvCacheDtype": request.kv_cache_dtype,
            "kvCachePages": program["num_pages"],
            "pageSize": request.page_size,
            "kvCacheTokensPerEngine": program["num_pages"] * request.page_size,
            "decode": f"{request.max_num_seqs} sequences x 1 token per engine",
            "prefill": f"one chunk of {request.max_num_batched_tokens} tokens per engine",
            "steps": steps,
            "compileWallSeconds": round(compile_wall, 3),
            "compileCpuSeconds": round(compile_cpu, 3),
        },
        "largestArrays": largest_arrays(program),
    }


TERMINATION_MESSAGE_LIMIT = 4096
"""Bytes of a container's termination message the kubelet keeps (Kubernetes API reference, Container
`terminationMessagePath`: "Message written is intended to be brief final status ... will be truncated
by the node if greater than 4096 bytes")."""

REFUSAL_CHARS = 240
"""How much of the compiler's refusal a compact verdict keeps: its figures are at the start."""


def compact_verdict(verdict: dict[str, Any]) -> str:
    """The verdict as one JSON line under the termination-message limit, for the operator's gate Job.

    It keeps the DESIGN §6 keys and what the CompileGate condition names (peak and usable bytes, the
    compiler's refusal, the largest arrays), and drops the per-step detail; the largest arrays are
    dropped one by one if the line would still be too long."""
    program = verdict["program"]
    refused = {
        step: figures["compilerRefused"][:REFUSAL_CHARS]
        for step, figures in program["steps"].items()
        if "compilerRefused" in figures
    }
    doc = {key: verdict[key] for key in ("fits", "devices", "deviceKind", "perDevice", "target", "compiler")}
    doc |= {key: verdict[key] for key in ("peakBytesPerDevice", "hbmBytesPerDevice", "usableBytesPerDevice")}
    doc["program"] = {
        "model": program["model"].split(" (", 1)[0],
        "mesh": program["mesh"],
        "layers": program["layers"],
        "compileCpuSeconds": program.get("compileCpuSeconds"),
        **({"compilerRefused": refused} if refused else {}),
    }
    kept = ("name", "bytesPerDevice", "layers")
    arrays = [{k: a[k] for k in kept if k in a} for a in verdict["largestArrays"][:3]]
    while True:
        text = json.dumps(doc | {"largestArrays": arrays}, separators=(",", ":"))
        if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT or not arrays:
            return text
        arrays = arrays[:-1]


def _arguments(argv: list[str]) -> tuple[str | None, str | None]:
    """(--request JSON, --termination-log PATH); both optional."""
    found: dict[str, str] = {}
    rest = list(argv)
    while rest:
        flag = rest.pop(0)
        if flag not in ("--request", "--termination-log") or not rest:
            raise GateInputError(f"usage: compile_gate [--request JSON] [--termination-log PATH]; got {flag}")
        found[flag] = rest.pop(0)
    return found.get("--request"), found.get("--termination-log")


def main(argv: list[str] | None = None) -> int:
    """Request on stdin (or --request), verdict on stdout; exit 0 fits, 1 does not fit, 2 the request is
    unusable.

    With --termination-log PATH (the operator's gate Job: /dev/termination-log) the compact verdict
    (or the error) is also written there, and a verdict exits 0 whether it fits or not: the Job then
    completes, and only a gate that produced no verdict fails it."""
    log_path: str | None = None
    try:
        text, log_path = _arguments(sys.argv[1:] if argv is None else argv)
        request = GateRequest.from_json(json.loads(text) if text is not None else json.load(sys.stdin))
        verdict = run_gate(request)
    except (GateInputError, KeyError, TypeError, ValueError) as err:
        json.dump({"error": str(err)}, sys.stdout)
        sys.stdout.write("\n")
        if log_path is not None:
            with open(log_path, "w", encoding="utf-8") as out:
                out.write(json.dumps({"error": str(err)[: TERMINATION_MESSAGE_LIMIT // 2]}))
        return 2
    json.dump(verdict, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if log_path is not None:
        with open(log_path, "w", encoding="utf-8") as out:
            out.write(compact_verdict(verdict))
        return 0
    return 0 if verdict["fits"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
