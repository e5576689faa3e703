"""Run in the tpu-env: start vLLM's general plugins as vLLM does, then ask the real registries.

argv[1]: JSON {"arch": name, "classes": ["module:Class", ...], "scenarios": [{env...}, ...]};
argv[2]: JSON out, one entry per scenario. vLLM and tpu-inference are imported once; each scenario
runs in a fork of that process (vLLM runs its plugins once per process, as it does in every process it
starts), with the scenario's environment (DATAJAX_PLAN_BUNDLE, DATAJAX_PLAN_STATUS). Each entry:
- entryPoints: the `vllm.general_plugins` entry points importlib finds (ours must be among them);
- loaded / error: whether vllm.plugins.load_general_plugins() ran our register() cleanly;
- tpuInference / vllm: what tpu-inference's model registry and vLLM's ModelRegistry hold for arch;
- realVerdicts: for each class, what the real register_model says ("ok" or its TypeError).
"""

import importlib
import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any


def name_of(obj: object) -> str | None:
    return None if obj is None else f"{obj.__module__}:{obj.__qualname__}"  # type: ignore[attr-defined]


def scenario(arch: str, classes: list[str]) -> dict[str, Any]:
    from tpu_inference.models.common import model_loader
    from vllm.model_executor.models.registry import ModelRegistry
    from vllm.plugins import load_general_plugins

    out: dict[str, Any] = {
        "entryPoints": sorted(f"{e.name}={e.value}" for e in entry_points(group="vllm.general_plugins"))
    }
    try:
        load_general_plugins()
        out["loaded"], out["error"] = True, None
    except Exception as exc:  # what vLLM's start-up would die of
        out["loaded"], out["error"] = False, f"{type(exc).__name__}: {exc}"
    out["tpuInference"] = name_of(model_loader._MODEL_REGISTRY.get(arch))
    out["vllm"] = arch in ModelRegistry.get_supported_archs()
    verdicts = {}
    for spec in classes:
        module, _, cls = spec.partition(":")
        klass = getattr(importlib.import_module(module), cls)
        try:
            model_loader.register_model(f"Probe{cls}", klass)
            verdicts[spec] = "ok"
        except TypeError as exc:
            verdicts[spec] = str(exc)
    out["realVerdicts"] = verdicts
    return out


def main() -> None:
    request = json.loads(Path(sys.argv[1]).read_text())
    # Imported before forking, so each scenario pays only for itself.
    import tpu_inference.models.common.model_loader  # noqa: F401
    import vllm.model_executor.models.registry
    import vllm.plugins  # noqa: F401

    results = []
    for index, env in enumerate(request["scenarios"]):
        target = Path(f"{sys.argv[2]}.{index}")
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.environ.update(env)
                target.write_text(json.dumps(scenario(request["arch"], request["classes"])))
            except BaseException as exc:  # report, never let the child run on into the parent's loop
                target.write_text(json.dumps({"probeError": repr(exc)}))
                code = 1
            finally:
                os._exit(code)
        os.waitpid(pid, 0)
        results.append(json.loads(target.read_text()))
    Path(sys.argv[2]).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
