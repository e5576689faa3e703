"""The vLLM plugin where no tpu-inference is needed: bundles, messages, the entry point.

Registration itself runs against the real tpu-inference and vLLM's own plugin loader in the tpu_stack
tier (tests/tpu_stack/test_plugin_real.py); there is no stand-in of register_model.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from datajax_runtime import plugin
from datajax_runtime.plan_status import read_plan_status

MODULE = "datajax_test_models"


# The same model classes the tpu_stack tier registers with the real tpu-inference: one set of them.
_PROBE_MODELS = Path(__file__).resolve().parents[1] / "tpu_stack" / "probes" / "datajax_probe_models.py"


def _probe_models() -> ModuleType:
    spec = importlib.util.spec_from_file_location("datajax_probe_models", _PROBE_MODELS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODELS = _probe_models()


def write_bundle(tmp_path: Path, implementation: str | None, arch: str = "DataJaxPlanForCausalLM") -> Path:
    doc: dict[str, Any] = {
        "version": 1,
        "modelId": "org/model",
        "mesh": {"axes": ["data", "model"], "shape": [1, 4]},
    }
    if implementation is not None:
        doc["architecture"] = {"name": arch, "implementation": implementation}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def run_register(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bundle: Path | None) -> Path:
    status = tmp_path / "run" / "plan-status.json"
    monkeypatch.setenv("DATAJAX_PLAN_STATUS", str(status))
    if bundle is None:
        monkeypatch.delenv("DATAJAX_PLAN_BUNDLE", raising=False)
    else:
        monkeypatch.setenv("DATAJAX_PLAN_BUNDLE", str(bundle))
    plugin.register()
    return status


@pytest.mark.parametrize(
    ("klass", "problems"),
    [
        ("GoodModel", []),
        ("KwargsModel", []),
        ("NoConfigModel", ["NoConfigModel.__init__ does not accept a 'vllm_config' keyword argument"]),
        ("NoCallModel", ["NoCallModel defines no __call__ method"]),
        (
            "PartialCallModel",
            ["PartialCallModel.__call__ does not accept keyword argument(s) kv_caches, attention_metadata"],
        ),
    ],
)
def test_interface_problems_name_what_is_missing(klass: str, problems: list[str]) -> None:
    assert plugin.interface_problems(getattr(MODELS, klass)) == problems


def test_without_tpu_inference_the_message_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tpu_inference", None)  # makes `import tpu_inference...` fail
    with pytest.raises(plugin.PlanRegistrationError, match="tpu-inference is not installed"):
        run_register(monkeypatch, tmp_path, write_bundle(tmp_path, f"{MODULE}:GoodModel"))
    status = read_plan_status(tmp_path / "run" / "plan-status.json")
    assert status is not None and status.reason == "TpuInferenceMissing"
    assert status.architecture == "DataJaxPlanForCausalLM"


def test_nothing_to_register_is_not_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    status_path = run_register(monkeypatch, tmp_path, None)
    status = read_plan_status(status_path)
    assert status is not None and status.reason == "NoBundle" and not status.registered
    status_path = run_register(monkeypatch, tmp_path, tmp_path / "not-mounted" / "bundle.json")
    status = read_plan_status(status_path)
    assert status is not None and status.reason == "NoBundle" and "does not exist" in status.message
    status_path = run_register(monkeypatch, tmp_path, write_bundle(tmp_path, None))
    status = read_plan_status(status_path)
    assert status is not None and status.reason == "NoArchitecture" and status.mesh == "data=1,model=4"


def test_a_broken_bundle_fails_start_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_text(
        '{"version": 1, "modelId": "m", "mesh": {"axes": ["model"], "shape": [0]}}', encoding="utf-8"
    )
    with pytest.raises(plugin.PlanRegistrationError, match=r"mesh\.shape\[0\]: must be a positive integer"):
        run_register(monkeypatch, tmp_path, bundle)


def test_entry_point_is_declared_for_vllm() -> None:
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group="vllm.general_plugins") if ep.name == "datajax"]
    assert found and found[0].load() is plugin.register
