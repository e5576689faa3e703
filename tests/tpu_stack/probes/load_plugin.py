"""Run in the tpu-env: start vLLM's general plugins as vLLM does, then ask the real registries.

argv[1]: JSON {"arch": name, "classes": ["module:Class", ...]}; argv[2]: JSON out with
- entryPoints: the `vllm.general_plugins` entry points importlib finds (ours must be among them);
- loaded / error: whether vllm.plugins.load_general_plugins() ran our register() cleanly;
- tpuInference / vllm: what tpu-inference's model registry and vLLM's ModelRegistry hold for arch;
- realVerdicts: for each class, what the real register_model says ("ok" or its TypeError).
"""

import importlib
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path


def name_of(obj: object) -> str | None:
    return None if obj is None else f"{obj.__module__}:{obj.__qualname__}"  # type: ignore[attr-defined]


def main() -> None:
    request = json.loads(Path(sys.argv[1]).read_text())
    arch = request["arch"]
    out: dict[str, object] = {
        "entryPoints": sorted(f"{e.name}={e.value}" for e in entry_points(group="vllm.general_plugins"))
    }
    from vllm.plugins import load_general_plugins

    try:
        load_general_plugins()
        out["loaded"], out["error"] = True, None
    except Exception as exc:  # what vLLM's start-up would die of
        out["loaded"], out["error"] = False, f"{type(exc).__name__}: {exc}"
    from tpu_inference.models.common import model_loader
    from vllm.model_executor.models.registry import ModelRegistry

    out["tpuInference"] = name_of(model_loader._MODEL_REGISTRY.get(arch))
    out["vllm"] = arch in ModelRegistry.get_supported_archs()
    verdicts = {}
    for spec in request["classes"]:
        module, _, cls = spec.partition(":")
        klass = getattr(importlib.import_module(module), cls)
        try:
            model_loader.register_model(f"Probe{cls}", klass)
            verdicts[spec] = "ok"
        except TypeError as exc:
            verdicts[spec] = str(exc)
    out["realVerdicts"] = verdicts
    Path(sys.argv[2]).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
