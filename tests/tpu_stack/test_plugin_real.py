"""The vLLM plugin against the real tpu-inference, loaded the way vLLM loads it.

The runtime distribution (runtime_image/) is installed, without dependencies, into a scratch directory
on the tpu-env's path, so its `vllm.general_plugins` entry point is found by importlib as in the image.
`vllm.plugins.load_general_plugins()` then runs our register(), which hands the bundle's class to the
real `tpu_inference.models.common.model_loader.register_model`; tpu-inference's registry and vLLM's
ModelRegistry must then resolve the architecture. Bad classes fail vLLM's start-up with our message,
and the real register_model refuses them too (its own message).
"""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from datajax_runtime.plan_status import read_plan_status
from tests.tpu_stack.conftest import PROBES, REPO, run_probe

ARCH = "DataJaxPlanForCausalLM"
MODULE = "datajax_probe_models"
BAD = {
    "NoConfigModel": (
        "NoConfigModel.__init__ does not accept a 'vllm_config' keyword argument",
        "vllm_config",
    ),
    "NoCallModel": ("NoCallModel defines no __call__ method", "must have a __call__ method"),
    "PartialCallModel": (
        "PartialCallModel.__call__ does not accept keyword argument(s) kv_caches, attention_metadata",
        "missing required keyword arguments",
    ),
}


@pytest.fixture(scope="module")
def runtime_site(tpu_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """datajax-runtime installed (no dependencies) as a wheel would install it, outside the repo."""
    scratch = tmp_path_factory.mktemp("runtime")
    source = scratch / "src"
    shutil.copytree(
        REPO / "runtime_image", source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    site = scratch / "site"
    subprocess.run(
        [
            tpu_python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    return site


SCENARIOS = {
    "GoodModel": f"{MODULE}:GoodModel",
    "KwargsModel": f"{MODULE}:KwargsModel",
    **{k: f"{MODULE}:{k}" for k in BAD},
    "no-module": "no_such_pkg.models:Model",
    "no-class": f"{MODULE}:Missing",
}


def bundle(directory: Path, implementation: str) -> Path:
    path = directory / "bundle.json"
    doc: dict[str, Any] = {
        "version": 1,
        "modelId": "org/model",
        "mesh": {"axes": ["data", "model"], "shape": [1, 4]},
        "architecture": {"name": ARCH, "implementation": implementation},
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def loaded(tpu_python: str, runtime_site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each scenario's outcome and plan status: one tpu-env process, one fork per scenario."""
    tmp = tmp_path_factory.mktemp("plugin")
    envs, statuses = [], {}
    for name, implementation in SCENARIOS.items():
        directory = tmp / name
        directory.mkdir()
        statuses[name] = directory / "plan-status.json"
        envs.append(
            {
                "DATAJAX_PLAN_BUNDLE": str(bundle(directory, implementation)),
                "DATAJAX_PLAN_STATUS": str(statuses[name]),
            }
        )
    request = {
        "arch": ARCH,
        "classes": [f"{MODULE}:{c}" for c in ("GoodModel", "KwargsModel", *BAD)],
        "scenarios": envs,
    }
    results = run_probe(tpu_python, "load_plugin.py", request, tmp, runtime_site, PROBES)
    return {name: (result, statuses[name]) for name, result in zip(SCENARIOS, results, strict=True)}


@pytest.mark.parametrize("klass", ["GoodModel", "KwargsModel"])
def test_bundle_architecture_is_registered_with_the_real_tpu_inference(
    loaded: dict[str, Any], klass: str
) -> None:
    result, status_path = loaded[klass]
    assert "datajax=datajax_runtime.plugin:register" in result["entryPoints"]
    assert result["loaded"], result["error"]
    assert result["tpuInference"] == f"{MODULE}:{klass}"
    assert result["vllm"] is True
    status = read_plan_status(status_path)
    assert status is not None and status.registered and status.reason == "Registered"
    assert status.architecture == ARCH and status.implementation == f"{MODULE}:{klass}"


@pytest.mark.parametrize("klass", sorted(BAD))
def test_bad_class_fails_start_up_with_our_message_and_the_real_one(
    loaded: dict[str, Any], klass: str
) -> None:
    ours, theirs = BAD[klass]
    result, status_path = loaded[klass]
    assert not result["loaded"]
    assert "PlanRegistrationError" in result["error"] and ours in result["error"]
    assert result["tpuInference"] is None and result["vllm"] is False
    assert theirs in result["realVerdicts"][f"{MODULE}:{klass}"]
    status = read_plan_status(status_path)
    assert status is not None and not status.registered and status.reason == "InvalidImplementation"


def test_our_interface_check_agrees_with_the_real_register_model(loaded: dict[str, Any]) -> None:
    verdicts = loaded["GoodModel"][0]["realVerdicts"]
    assert verdicts[f"{MODULE}:GoodModel"] == verdicts[f"{MODULE}:KwargsModel"] == "ok"
    assert all(verdicts[f"{MODULE}:{k}"] != "ok" for k in BAD)


def test_missing_module_and_class_are_named(loaded: dict[str, Any]) -> None:
    assert "cannot import module 'no_such_pkg.models'" in loaded["no-module"][0]["error"]
    assert f"module '{MODULE}' has no attribute 'Missing'" in loaded["no-class"][0]["error"]
