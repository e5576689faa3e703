"""The vLLM plugin against a stand-in of tpu-inference's register_model.

tpu-inference 0.32.0 does download, but importing its model_loader pulls in vLLM, torch, flax and a
TPU jax (jax==0.11.2, libtpu), none of which can run here; so the one stand-in of this suite is a
`tpu_inference.models.common.model_loader` module injected into sys.modules, whose register_model
applies the checks the real one applies (`_validate_model_interface` with vLLM's `supports_kw`
rules: a parameter of that name or a `**kwargs` catch-all; `__call__` defined somewhere in the MRO).
"""

from __future__ import annotations

import inspect
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datajax_runtime import plugin
from datajax_runtime.bundle import build_model_definition
from datajax_runtime.plan_status import read_plan_status

MODULE = "datajax_test_models"


def supports_kw(function: Any, name: str) -> bool:
    """vLLM's rule: the name is a positional-or-keyword/keyword-only parameter, or the last is **kwargs."""
    parameters = inspect.signature(function).parameters
    if not parameters:
        return False
    parameter = parameters.get(name)
    if parameter is not None and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
        return True
    last = parameters[next(reversed(parameters))]
    return last.kind is last.VAR_KEYWORD and last.name != name


class StandInLoader(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("tpu_inference.models.common.model_loader")
        self.registry: dict[str, Any] = {}

    def register_model(self, arch: str, model: Any) -> None:
        if not supports_kw(model.__init__, "vllm_config"):
            raise TypeError(
                f"Model {model.__name__} __init__ method must accept a 'vllm_config' keyword argument."
            )
        if not any("__call__" in klass.__dict__ for klass in model.__mro__):
            raise TypeError(f"Model {model.__name__} must have a __call__ method.")
        missing = tuple(
            a for a in ("kv_caches", "input_ids", "attention_metadata") if not supports_kw(model.__call__, a)
        )
        if missing:
            raise TypeError(
                f"Model {model.__name__} __call__ method is missing required keyword arguments: {missing}"
            )
        self.registry[arch] = model


class GoodModel:
    def __init__(self, vllm_config: Any, rng: Any = None, mesh: Any = None) -> None:
        self.config = vllm_config

    def __call__(self, kv_caches: Any, input_ids: Any, attention_metadata: Any, *args: Any) -> Any:
        return kv_caches, input_ids


class KwargsModel:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __call__(self, **kwargs: Any) -> Any:
        return kwargs


class NoConfigModel:
    def __init__(self, config: Any) -> None:
        self.config = config

    def __call__(self, kv_caches: Any, input_ids: Any, attention_metadata: Any) -> Any:
        return None


class NoCallModel:
    def __init__(self, vllm_config: Any) -> None:
        self.config = vllm_config


class PartialCallModel:
    def __init__(self, vllm_config: Any) -> None:
        self.config = vllm_config

    def __call__(self, input_ids: Any) -> Any:
        return input_ids


@pytest.fixture
def loader(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInLoader]:
    stand_in = StandInLoader()
    for name in ("tpu_inference", "tpu_inference.models", "tpu_inference.models.common"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, stand_in.__name__, stand_in)
    models = types.ModuleType(MODULE)
    for klass in (GoodModel, KwargsModel, NoConfigModel, NoCallModel, PartialCallModel):
        setattr(models, klass.__name__, klass)
    monkeypatch.setitem(sys.modules, MODULE, models)
    yield stand_in


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


@pytest.mark.parametrize("klass", [GoodModel, KwargsModel])
def test_valid_class_is_registered_and_reported(
    loader: StandInLoader, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, klass: type
) -> None:
    bundle = write_bundle(tmp_path, f"{MODULE}:{klass.__name__}")
    status_path = run_register(monkeypatch, tmp_path, bundle)
    assert loader.registry == {"DataJaxPlanForCausalLM": klass}
    status = read_plan_status(status_path)
    assert status is not None and status.registered and status.reason == "Registered"
    definition = build_model_definition(bundle)
    assert (status.model, status.mesh, status.hash) == ("org/model", "data=1,model=4", definition.hash)
    assert status.implementation == f"{MODULE}:{klass.__name__}"
    assert status_path.stat().st_mode & 0o777 == 0o644  # the non-root sidecar must read it


@pytest.mark.parametrize(
    ("klass", "message"),
    [
        ("NoConfigModel", "NoConfigModel.__init__ does not accept a 'vllm_config' keyword argument"),
        ("NoCallModel", "NoCallModel defines no __call__ method"),
        (
            "PartialCallModel",
            "PartialCallModel.__call__ does not accept keyword argument(s) kv_caches, attention_metadata",
        ),
    ],
)
def test_invalid_class_fails_start_up_saying_what_is_missing(
    loader: StandInLoader, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, klass: str, message: str
) -> None:
    bundle = write_bundle(tmp_path, f"{MODULE}:{klass}")
    with pytest.raises(plugin.PlanRegistrationError) as caught:
        run_register(monkeypatch, tmp_path, bundle)
    assert message in str(caught.value)
    assert loader.registry == {}
    status = read_plan_status(tmp_path / "run" / "plan-status.json")
    assert status is not None and not status.registered and status.reason == "InvalidImplementation"
    assert message in status.message


def test_our_checks_agree_with_the_stand_in(loader: StandInLoader) -> None:
    for klass in (GoodModel, KwargsModel, NoConfigModel, NoCallModel, PartialCallModel):
        ours = plugin.interface_problems(klass)
        try:
            loader.register_model("X", klass)
            theirs_ok = True
        except TypeError:
            theirs_ok = False
        assert (not ours) == theirs_ok, klass


def test_missing_module_and_class_are_named(
    loader: StandInLoader, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(plugin.PlanRegistrationError, match=r"cannot import module 'no_such_pkg\.models'"):
        run_register(monkeypatch, tmp_path, write_bundle(tmp_path, "no_such_pkg.models:Model"))
    with pytest.raises(plugin.PlanRegistrationError, match=f"module '{MODULE}' has no attribute 'Missing'"):
        run_register(monkeypatch, tmp_path, write_bundle(tmp_path, f"{MODULE}:Missing"))


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
