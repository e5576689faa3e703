"""`validate-mesh --target tpu`: size the plan with libtpu's TPU compiler, before a TPU is paid for.

The operator's own environment has neither JAX's TPU backend nor libtpu, so the compile runs in
another interpreter that has them: `--python`, else `$DATAJAX_TPU_PYTHON`, else the tpu-env that
`make tpu-env` builds (tools/tpu-env.sh). That interpreter runs `datajax_runtime.compile_gate` from
this checkout (put on its path through a private directory, so nothing of the operator's own
site-packages shadows the tpu-env's JAX). The request carries everything the plan implies: the slice
as libtpu names it, the mesh, the model's shapes (a Hugging Face config.json, or estimates from
spec.model), the serving sizes and the KV cache the planner reserves.

Outside the pure layers: it starts a process. The request itself is built by pure functions
(`plan.gate_request`).
"""

import importlib.util
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from datajax_operator.plan.gate_request import COMPILE_ONLY_ENV, GateError

TPU_PYTHON_ENV: Final = "DATAJAX_TPU_PYTHON"
EXIT_FITS, EXIT_DOES_NOT_FIT, EXIT_INVALID = 0, 1, 2


LLAMA_SHAPED: Final = frozenset(
    {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}
)
"""Architectures whose decoder the gate's program reproduces (RMSNorm, GQA attention, SwiGLU MLP)."""


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
        env = COMPILE_ONLY_ENV | env  # a caller's own JAX_PLATFORMS or lock setting wins, as before
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
