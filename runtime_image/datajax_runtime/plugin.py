"""The vLLM general plugin: register the plan bundle's architecture with tpu-inference.

vLLM calls `register()` (entry point `vllm.general_plugins` -> `datajax`) in every process it starts,
before it loads a model. When `DATAJAX_PLAN_BUNDLE` names a bundle with an architecture and its
implementation (`package.module:Class`), the class is imported and handed to
`tpu_inference.models.common.model_loader.register_model(arch, model)`, which accepts a class whose
`__init__` takes `vllm_config` and whose `__call__` takes `kv_caches`, `input_ids` and
`attention_metadata` (by name, or through `**kwargs`). We check the same interface first so the
message names exactly what is missing, write the outcome to `DATAJAX_PLAN_STATUS` for the sidecar
(`datajax_plan_registered`, `datajax_plan_info`), and then fail vLLM's start-up if the bundle asked
for an architecture we could not register: serving without it would fail later and less clearly.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from typing import Any

from datajax_runtime.bundle import (
    BUNDLE_VERSION,
    BundleError,
    ModelDefinition,
    build_model_definition,
    load_bundle,
)
from datajax_runtime.plan_status import PlanStatus, write_plan_status

__all__ = ["PlanRegistrationError", "interface_problems", "register", "register_bundle"]

log = logging.getLogger("datajax_runtime.plugin")

BUNDLE_ENV = "DATAJAX_PLAN_BUNDLE"
STATUS_ENV = "DATAJAX_PLAN_STATUS"
MODEL_LOADER = "tpu_inference.models.common.model_loader"
CALL_ARGUMENTS = ("kv_caches", "input_ids", "attention_metadata")
# Outcomes that mean "nothing was asked of us", as opposed to "asked and failed".
_NOTHING_TO_DO = ("NoBundle", "NoArchitecture")


class PlanRegistrationError(RuntimeError):
    """The bundle names an architecture that could not be registered; the message says why."""


def _accepts_keyword(function: Any, name: str) -> bool:
    """Whether `function` can be called with `name=` (a named parameter or `**kwargs`)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get(name)
    if parameter is not None and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
        return True
    return any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def interface_problems(model: Any) -> list[str]:
    """What `model` lacks of the interface tpu-inference's register_model checks (empty when fine)."""
    name = getattr(model, "__name__", repr(model))
    if not isinstance(model, type):
        return [f"{name} is not a class"]
    problems = []
    constructor: Any = model  # Any: mypy rejects reading __init__ off a narrowed `type`
    if not _accepts_keyword(constructor.__init__, "vllm_config"):
        problems.append(f"{name}.__init__ does not accept a 'vllm_config' keyword argument")
    if not any("__call__" in klass.__dict__ for klass in model.__mro__):
        problems.append(f"{name} defines no __call__ method")
    else:
        missing = [arg for arg in CALL_ARGUMENTS if not _accepts_keyword(model.__call__, arg)]
        if missing:
            problems.append(f"{name}.__call__ does not accept keyword argument(s) {', '.join(missing)}")
    return problems


def _status(reason: str, message: str, definition: ModelDefinition | None = None) -> PlanStatus:
    if definition is None:
        return PlanStatus(registered=reason == "Registered", reason=reason, message=message)
    return PlanStatus(
        registered=reason == "Registered",
        reason=reason,
        message=message,
        model=definition.model_id,
        architecture=definition.architecture or "",
        implementation=definition.implementation or "",
        mesh=definition.mesh_description,
        hash=definition.hash,
        bundle_version=BUNDLE_VERSION,
    )


def register_bundle(bundle_path: str | None) -> PlanStatus:
    """Register the bundle's architecture if it names one; return the outcome, never raise it."""
    if not bundle_path:
        return _status("NoBundle", f"{BUNDLE_ENV} is not set: no DataJAX plan to register")
    if not os.path.exists(bundle_path):
        # The pod template may always set the variable; without a plan no ConfigMap is mounted there.
        return _status("NoBundle", f"{BUNDLE_ENV}={bundle_path} does not exist: no DataJAX plan to register")
    try:
        definition = build_model_definition(load_bundle(bundle_path))
    except BundleError as err:
        return _status("InvalidBundle", f"plan bundle {bundle_path}: {err}")
    if definition.architecture is None or definition.implementation is None:
        return _status("NoArchitecture", "the bundle names no architecture: nothing to register", definition)
    arch, implementation = definition.architecture, definition.implementation
    try:
        loader = importlib.import_module(MODEL_LOADER)
    except ImportError as err:
        return _status(
            "TpuInferenceMissing",
            f"cannot register {arch}: tpu-inference is not installed"
            f" ({MODEL_LOADER} failed to import: {err})",
            definition,
        )
    register_model = getattr(loader, "register_model", None)
    if not callable(register_model):
        return _status(
            "TpuInferenceMissing", f"cannot register {arch}: {MODEL_LOADER} has no register_model", definition
        )
    module_name, _, class_name = implementation.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        return _status(
            "ImplementationNotFound",
            f"cannot import module {module_name!r} of {implementation}: {err}",
            definition,
        )
    model = getattr(module, class_name, None)
    if model is None:
        return _status(
            "ImplementationNotFound", f"module {module_name!r} has no attribute {class_name!r}", definition
        )
    problems = interface_problems(model)
    if problems:
        return _status(
            "InvalidImplementation",
            f"{implementation} cannot serve {arch}: " + "; ".join(problems),
            definition,
        )
    try:
        register_model(arch, model)
    except Exception as err:  # tpu-inference's own checks or registry may refuse; report, don't guess
        return _status(
            "RegistrationFailed", f"register_model({arch!r}, {implementation}) failed: {err}", definition
        )
    return _status("Registered", f"registered {implementation} as {arch} with tpu-inference", definition)


def register() -> None:
    """The `vllm.general_plugins` entry point."""
    status = register_bundle(os.environ.get(BUNDLE_ENV))
    status_path = os.environ.get(STATUS_ENV)
    if status_path:
        write_plan_status(status_path, status)
    if status.registered or status.reason in _NOTHING_TO_DO:
        log.info("datajax plan: %s", status.message)
        return
    log.error("datajax plan: %s", status.message)
    raise PlanRegistrationError(status.message)
