"""The DataJAX plan bundle: a versioned JSON document describing how a lowered plan is served.

The bundle travels from the user (a ConfigMap) to the serving pod (the vLLM plugin) and to the mesh
validator, so it is plain JSON with a JSON Schema (`bundle.schema.json`, next to this module) and
a deterministic model definition: the same bundle always yields the same mesh, the same
PartitionSpecs and the same hash (SHA-256 of the canonical JSON), whatever key order or whitespace
it was written with.

Public API, kept small for its consumers (the plugin here, `validate-mesh` in the operator):

- `load_bundle(path | mapping) -> PlanBundle` validates and normalises (raises `BundleError`);
- `build_model_definition(bundle) -> ModelDefinition`: mesh axes/shape, input/output specs as tuples
  whose entries are `None`, an axis name or a tuple of axis names (`partition_spec`, the one
  representation the mesh validator shares), so `jax.sharding.PartitionSpec(*definition.in_spec)`
  builds the JAX object;
- an optional `validation` section (program, sample inputs, outputs to check) tells
  `datajax-operator validate-mesh --bundle` how to exercise the plan's sharding on CPU devices;
- `bundle_hash(bundle) -> "sha256:<hex>"`;
- `bundle_from_lowered_plan(lowered, model_id=...)` adapts a DataJAX `LoweredPlan` (duck-typed: no
  dependency on DataJAX or JAX) and `PlanCallableFactory` turns its callable into one bound to
  tokenizer/config payloads.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datajax_runtime.partition_spec import (
    ArraySpec,
    PartitionSpecError,
    Spec,
    axis_problems,
    format_spec,
    parse_spec,
    spec_to_json,
)

__all__ = [
    "BUNDLE_VERSION",
    "SCHEMA_PATH",
    "BundleError",
    "BundleValidation",
    "ModelDefinition",
    "PlanBundle",
    "PlanCallable",
    "PlanCallableFactory",
    "build_model_definition",
    "bundle_from_lowered_plan",
    "bundle_hash",
    "canonical_json",
    "load_bundle",
]

BUNDLE_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("bundle.schema.json")


class BundleError(ValueError):
    """A bundle that cannot be served; the message names the field (dotted path) and the problem."""


@dataclass(frozen=True)
class BundleValidation:
    """How the mesh validator exercises the plan: a program, sample inputs, the outputs to check.

    `program` is a built-in name (`attention_projection`) or the plan's callable as
    `package.module:function` (dict of arrays in, dict of arrays out). Arrays without a partitionSpec
    take the bundle's `partitionSpecs.input` / `.output`.
    """

    program: str
    inputs: tuple[ArraySpec, ...]
    outputs: tuple[ArraySpec, ...]
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "seed": self.seed,
            "inputs": [a.to_json() for a in self.inputs],
            "outputs": [a.to_json() for a in self.outputs],
        }


@dataclass(frozen=True)
class PlanBundle:
    """A validated, normalised bundle (version 1)."""

    model_id: str
    mesh_axes: tuple[str, ...]
    mesh_shape: tuple[int, ...]
    input_spec: Spec | None = None
    output_spec: Spec | None = None
    architecture: str | None = None
    implementation: str | None = None
    columns: tuple[str, ...] = ()
    validation: BundleValidation | None = None
    version: int = BUNDLE_VERSION

    def to_json(self) -> dict[str, Any]:
        """The bundle as JSON, with optional parts omitted when absent (one canonical form)."""
        doc: dict[str, Any] = {
            "version": self.version,
            "modelId": self.model_id,
            "mesh": {"axes": list(self.mesh_axes), "shape": list(self.mesh_shape)},
        }
        if self.architecture is not None:
            doc["architecture"] = {"name": self.architecture, "implementation": self.implementation}
        specs = {}
        if self.input_spec is not None:
            specs["input"] = spec_to_json(self.input_spec)
        if self.output_spec is not None:
            specs["output"] = spec_to_json(self.output_spec)
        if specs:
            doc["partitionSpecs"] = specs
        if self.columns:
            doc["columns"] = list(self.columns)
        if self.validation is not None:
            doc["validation"] = self.validation.to_json()
        return doc


@dataclass(frozen=True)
class ModelDefinition:
    """What a serving runtime needs to build and shard the plan; deterministic in the bundle."""

    model_id: str
    architecture: str | None
    implementation: str | None
    mesh_axes: tuple[str, ...]
    mesh_shape: tuple[int, ...]
    in_spec: Spec
    out_spec: Spec
    columns: tuple[str, ...]
    hash: str

    @property
    def devices(self) -> int:
        """Devices the mesh spans (product of its shape)."""
        return math.prod(self.mesh_shape)

    @property
    def mesh_description(self) -> str:
        """`data=1,model=8`: the mesh as one label value."""
        return ",".join(f"{axis}={size}" for axis, size in zip(self.mesh_axes, self.mesh_shape, strict=True))


def canonical_json(document: Any) -> str:
    """Sorted keys, no whitespace, no NaN: the text hashed for determinism."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def bundle_hash(bundle: PlanBundle) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(bundle.to_json()).encode("utf-8")).hexdigest()


def build_model_definition(
    bundle: PlanBundle | Mapping[str, Any] | str | os.PathLike[str],
) -> ModelDefinition:
    """The model definition of a bundle; a missing spec means replicated (`PartitionSpec()`)."""
    plan = bundle if isinstance(bundle, PlanBundle) else load_bundle(bundle)
    return ModelDefinition(
        model_id=plan.model_id,
        architecture=plan.architecture,
        implementation=plan.implementation,
        mesh_axes=plan.mesh_axes,
        mesh_shape=plan.mesh_shape,
        in_spec=plan.input_spec or (),
        out_spec=plan.output_spec or (),
        columns=plan.columns,
        hash=bundle_hash(plan),
    )


# ---------------------------------------------------------------- loading and validation


def load_bundle(source: Mapping[str, Any] | str | os.PathLike[str]) -> PlanBundle:
    """Read (from a path or an already-decoded mapping), validate and normalise a bundle."""
    if isinstance(source, Mapping):
        doc: Any = source
    else:
        try:
            doc = json.loads(Path(source).read_text(encoding="utf-8"))
        except OSError as err:
            raise BundleError(f"cannot read bundle {source}: {err.strerror or err}") from None
        except json.JSONDecodeError as err:
            raise BundleError(f"bundle {source} is not JSON: {err}") from None
    if not isinstance(doc, Mapping):
        raise BundleError("bundle: must be a JSON object")
    allowed = {
        "version",
        "modelId",
        "architecture",
        "mesh",
        "partitionSpecs",
        "columns",
        "validation",
    }
    _no_extra(doc, allowed, "")
    version = doc.get("version")
    if version != BUNDLE_VERSION or isinstance(version, bool):
        raise BundleError(f"version: this runtime reads bundle version {BUNDLE_VERSION}, got {version!r}")
    model_id = _string(doc.get("modelId"), "modelId")
    axes, shape = _mesh(doc.get("mesh"))
    architecture = implementation = None
    if doc.get("architecture") is not None:
        arch = _object(doc["architecture"], "architecture")
        _no_extra(arch, {"name", "implementation"}, "architecture")
        architecture = _string(arch.get("name"), "architecture.name")
        implementation = _string(arch.get("implementation"), "architecture.implementation")
        module, _, attribute = implementation.partition(":")
        if not module or not attribute or not all(p.isidentifier() for p in [*module.split("."), attribute]):
            raise BundleError(
                f"architecture.implementation: want 'package.module:ClassName', got {implementation!r}"
            )
    input_spec = output_spec = None
    if doc.get("partitionSpecs") is not None:
        specs = _object(doc["partitionSpecs"], "partitionSpecs")
        _no_extra(specs, {"input", "output"}, "partitionSpecs")
        if specs.get("input") is not None:
            input_spec = _spec(specs["input"], axes, "partitionSpecs.input")
        if specs.get("output") is not None:
            output_spec = _spec(specs["output"], axes, "partitionSpecs.output")
    columns: tuple[str, ...] = ()
    if doc.get("columns") is not None:
        columns = tuple(_string(c, f"columns[{i}]") for i, c in enumerate(_array(doc["columns"], "columns")))
    validation = None
    if doc.get("validation") is not None:
        validation = _validation(doc["validation"], axes, input_spec, output_spec)
    return PlanBundle(
        model_id=model_id,
        mesh_axes=axes,
        mesh_shape=shape,
        input_spec=input_spec,
        output_spec=output_spec,
        architecture=architecture,
        implementation=implementation,
        columns=columns,
        validation=validation,
    )


def _no_extra(doc: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(doc) - allowed)
    if extra:
        raise BundleError(f"{where or 'bundle'}: unknown field(s) {', '.join(extra)}")


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BundleError(f"{where}: must be an object")
    return value


def _array(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise BundleError(f"{where}: must be an array")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BundleError(f"{where}: must be a non-empty string")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BundleError(f"{where}: must be a non-negative integer")
    return value


def _mesh(value: Any) -> tuple[tuple[str, ...], tuple[int, ...]]:
    mesh = _object(value, "mesh")
    _no_extra(mesh, {"axes", "shape"}, "mesh")
    axes = tuple(_string(a, f"mesh.axes[{i}]") for i, a in enumerate(_array(mesh.get("axes"), "mesh.axes")))
    shape_raw = _array(mesh.get("shape"), "mesh.shape")
    shape = []
    for i, size in enumerate(shape_raw):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise BundleError(f"mesh.shape[{i}]: must be a positive integer, got {size!r}")
        shape.append(size)
    if not axes:
        raise BundleError("mesh.axes: needs at least one axis")
    if len(set(axes)) != len(axes):
        raise BundleError(f"mesh.axes: axis names must be distinct, got {list(axes)}")
    if len(shape) != len(axes):
        raise BundleError(f"mesh.shape: {len(shape)} sizes for {len(axes)} axes {list(axes)}")
    return axes, tuple(shape)


def _spec(value: Any, axes: tuple[str, ...], where: str) -> Spec:
    try:
        spec = parse_spec(value, where)
    except PartitionSpecError as err:
        raise BundleError(str(err)) from None
    problems = axis_problems(spec, axes)
    if problems:
        raise BundleError(f"{where}: {format_spec(spec)} " + "; ".join(problems))
    return spec


def _arrays(value: Any, axes: tuple[str, ...], where: str, default: Spec | None) -> tuple[ArraySpec, ...]:
    arrays = []
    for i, raw in enumerate(_array(value, where)):
        try:
            array = ArraySpec.from_json(raw, f"{where}[{i}]", default)
        except PartitionSpecError as err:
            raise BundleError(str(err)) from None
        problems = axis_problems(array.spec, axes)
        if problems:
            raise BundleError(
                f"{where}[{i}] ({array.name!r}): {format_spec(array.spec)} " + "; ".join(problems)
            )
        arrays.append(array)
    names = [a.name for a in arrays]
    if len(set(names)) != len(names):
        raise BundleError(f"{where}: array names must be distinct, got {names}")
    return tuple(arrays)


def _validation(
    value: Any, axes: tuple[str, ...], input_spec: Spec | None, output_spec: Spec | None
) -> BundleValidation:
    section = _object(value, "validation")
    _no_extra(section, {"program", "seed", "inputs", "outputs"}, "validation")
    program = _string(section.get("program"), "validation.program")
    module, sep, attribute = program.partition(":")
    if not all(p.isidentifier() for p in [*module.split("."), *([attribute] if sep else [])]):
        raise BundleError(
            f"validation.program: want a built-in name or 'package.module:function', got {program!r}"
        )
    seed = _count(section.get("seed", 0), "validation.seed")
    inputs = _arrays(section.get("inputs"), axes, "validation.inputs", input_spec)
    missing = [a.name for a in inputs if a.shape is None]
    if not inputs or missing:
        raise BundleError(f"validation.inputs: every input needs a sample shape (missing for {missing})")
    outputs = _arrays(section.get("outputs"), axes, "validation.outputs", output_spec)
    if not outputs:
        raise BundleError("validation.outputs: name at least one output to check")
    return BundleValidation(program=program, inputs=inputs, outputs=outputs, seed=seed)


# ---------------------------------------------------------------- DataJAX adapter


def _lowered_mesh(lowered: Any, axes: tuple[str, ...], world_size: int) -> tuple[int, ...]:
    """Mesh shape of a LoweredPlan: explicit sizes, else its JAX mesh, else DataJAX's own rule."""
    resources = lowered.plan.resources
    sizes = getattr(resources, "axis_sizes", None)
    if sizes:
        if isinstance(sizes, Mapping):
            return tuple(int(sizes[axis]) for axis in axes)
        return tuple(int(s) for s in sizes)
    mesh = getattr(lowered, "mesh", None)
    mesh_shape = getattr(mesh, "shape", None)
    if isinstance(mesh_shape, Mapping) and tuple(mesh_shape) == axes:
        return tuple(int(mesh_shape[axis]) for axis in axes)
    # DataJAX's mesh_shape_from_resource: one axis takes every device; two axes split the world
    # into rows x cols with rows the largest divisor not above its square root; more axes put
    # every device on the first.
    if len(axes) <= 1:
        return (world_size,)
    if len(axes) == 2:
        rows = max(r for r in range(1, math.isqrt(world_size) + 1) if world_size % r == 0)
        return (rows, world_size // rows)
    return (world_size,) + (1,) * (len(axes) - 1)


def _lowered_spec(spec: Any) -> list[Any] | None:
    """A JAX PartitionSpec (a tuple), a NamedSharding (`.spec`) or None, as bundle JSON."""
    if spec is None:
        return None
    spec = getattr(spec, "spec", spec)
    entries: list[Any] = []
    for entry in spec:
        if entry is None or entry is Ellipsis:
            entries.append(None)
        elif isinstance(entry, str):
            entries.append(entry)
        else:
            entries.append([str(name) for name in entry])
    return entries


def bundle_from_lowered_plan(
    lowered: Any,
    *,
    model_id: str,
    architecture: str | None = None,
    implementation: str | None = None,
) -> PlanBundle:
    """Describe a DataJAX `LoweredPlan` (or anything shaped like one) as a bundle."""
    plan = getattr(lowered, "plan", None)
    resources = getattr(plan, "resources", None)
    if resources is None:
        raise BundleError("lowered plan has no plan.resources: cannot derive its mesh")
    axes = tuple(str(a) for a in (getattr(resources, "mesh_axes", None) or ("rows",)))
    world_size = int(getattr(resources, "world_size", 0) or 1)
    shape = _lowered_mesh(lowered, axes, world_size)
    doc: dict[str, Any] = {
        "version": BUNDLE_VERSION,
        "modelId": model_id,
        "mesh": {"axes": list(axes), "shape": list(shape)},
        "columns": [str(c) for c in getattr(lowered, "columns", ())],
    }
    specs = {
        key: value
        for key, value in (
            ("input", _lowered_spec(getattr(lowered, "in_spec", None))),
            ("output", _lowered_spec(getattr(lowered, "out_spec", None))),
        )
        if value is not None
    }
    if specs:
        doc["partitionSpecs"] = specs
    if architecture is not None or implementation is not None:
        doc["architecture"] = {"name": architecture, "implementation": implementation}
    return load_bundle(doc)


@dataclass(frozen=True)
class PlanCallable:
    """The plan's callable bound to one tokenizer/config pair; returns outputs in column order."""

    definition: ModelDefinition
    fingerprint: str
    tokenizer: Mapping[str, Any]
    config: Mapping[str, Any]
    _function: Callable[[Mapping[str, Any]], Mapping[str, Any]]

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        result = self._function(batch)
        if not self.definition.columns:
            return dict(result)
        missing = [c for c in self.definition.columns if c not in result]
        if missing:
            raise KeyError(f"plan callable did not return column(s) {missing}")
        return {column: result[column] for column in self.definition.columns}


class PlanCallableFactory:
    """Makes `PlanCallable`s from tokenizer/config payloads (JSON-like mappings).

    A config payload that states the serving mesh (`{"mesh": {"axes": [...], "shape": [...]}}`) must
    match the plan's: a plan is never silently run on a mesh it was not planned for. The fingerprint
    hashes the plan and both payloads, so the same inputs always name the same callable.
    """

    def __init__(
        self, function: Callable[[Mapping[str, Any]], Mapping[str, Any]], definition: ModelDefinition
    ):
        self._function = function
        self.definition = definition

    @classmethod
    def from_lowered_plan(cls, lowered: Any, *, model_id: str, **bundle_fields: Any) -> PlanCallableFactory:
        bundle = bundle_from_lowered_plan(lowered, model_id=model_id, **bundle_fields)
        return cls(lowered.callable, build_model_definition(bundle))

    def __call__(
        self, *, tokenizer: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None
    ) -> PlanCallable:
        tokenizer = dict(tokenizer or {})
        config = dict(config or {})
        if "mesh" in config:
            axes, shape = _mesh(config["mesh"])
            if (axes, shape) != (self.definition.mesh_axes, self.definition.mesh_shape):
                raise BundleError(
                    f"config.mesh: serving mesh {dict(zip(axes, shape, strict=True))} differs from"
                    f" the plan's {self.definition.mesh_description}"
                )
        try:
            payloads = canonical_json({"tokenizer": tokenizer, "config": config})
        except (TypeError, ValueError) as err:
            raise BundleError(f"tokenizer/config payloads must be JSON data: {err}") from None
        digest = hashlib.sha256(f"{self.definition.hash}\n{payloads}".encode()).hexdigest()
        return PlanCallable(self.definition, "sha256:" + digest, tokenizer, config, self._function)
