"""PartitionSpecs as JSON carries them: the one representation the plan bundle and the mesh validator share.

A PartitionSpec has one entry per array dimension: ``null`` (replicated), a mesh axis name, or a list of
mesh axis names (the dimension is split over their product). In Python an entry is ``None``, a ``str`` or
a ``tuple[str, ...]``, so ``jax.sharding.PartitionSpec(*spec)`` builds the JAX object. ``ArraySpec`` names
an array and gives its PartitionSpec (and, for inputs, the sample shape and dtype a validation run uses).

Pure: no JAX, so the bundle loader (in the vLLM plugin) and the validator's launcher use it freely.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ArraySpec",
    "PartitionSpecError",
    "Spec",
    "SpecEntry",
    "array_problems",
    "axis_problems",
    "format_spec",
    "parse_spec",
    "spec_axes",
    "spec_to_json",
]

SpecEntry = str | tuple[str, ...] | None
Spec = tuple[SpecEntry, ...]
SUPPORTED_DTYPES = ("float32", "bfloat16")


class PartitionSpecError(ValueError):
    """A PartitionSpec or array description that is not well-formed; the message starts with its path."""


def parse_spec(value: Any, where: str) -> Spec:
    """Structure only (a list of null / name / non-empty list of names); mesh axes are checked separately."""
    if not isinstance(value, list | tuple):
        raise PartitionSpecError(f"{where}: must be an array")
    entries: list[SpecEntry] = []
    for i, entry in enumerate(value):
        if entry is None:
            entries.append(None)
        elif isinstance(entry, str) and entry:
            entries.append(entry)
        elif isinstance(entry, list | tuple):
            if not entry:
                raise PartitionSpecError(
                    f"{where}[{i}]: an empty axis list; write null for a replicated dimension"
                )
            for j, name in enumerate(entry):
                if not isinstance(name, str) or not name:
                    raise PartitionSpecError(f"{where}[{i}][{j}]: must be a non-empty string")
            entries.append(tuple(entry))
        else:
            raise PartitionSpecError(f"{where}[{i}]: want null, an axis name or a list of axis names")
    return tuple(entries)


def spec_to_json(spec: Sequence[SpecEntry]) -> list[Any]:
    return [list(entry) if isinstance(entry, tuple) else entry for entry in spec]


def spec_axes(entry: SpecEntry) -> tuple[str, ...]:
    if entry is None:
        return ()
    return (entry,) if isinstance(entry, str) else entry


def format_spec(spec: Sequence[SpecEntry]) -> str:
    """``P('data', None)`` - the form users see in JAX code and error messages."""

    def one(e: SpecEntry) -> str:
        if isinstance(e, tuple):
            return "(" + ", ".join(repr(a) for a in e) + ")"
        return repr(e)

    return "P(" + ", ".join(one(e) for e in spec) + ")"


def axis_problems(spec: Sequence[SpecEntry], mesh_axes: Sequence[str]) -> list[str]:
    """Axes the mesh lacks and axes used for two dimensions, each phrased after the array's name."""
    mesh_text = "(" + ", ".join(repr(a) for a in mesh_axes) + ")"
    problems: list[str] = []
    used: list[str] = []
    for entry in spec:
        for axis in spec_axes(entry):
            if axis not in mesh_axes:
                problems.append(f"names mesh axis {axis!r}, which the mesh {mesh_text} lacks")
            elif axis in used:
                problems.append(f"uses mesh axis {axis!r} for two dimensions")
            used.append(axis)
    return problems


@dataclass(frozen=True)
class ArraySpec:
    """A named input (shape and dtype known) or output (shape found by running) with its PartitionSpec."""

    name: str
    spec: Spec
    shape: tuple[int, ...] | None = None
    dtype: str = "float32"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "partitionSpec": spec_to_json(self.spec)}
        if self.shape is not None:
            out["shape"] = list(self.shape)
            out["dtype"] = self.dtype
        return out

    @classmethod
    def from_json(cls, raw: Any, where: str, default_spec: Spec | None = None) -> ArraySpec:
        """Parse ``{name, partitionSpec?, shape?, dtype?}``; no partitionSpec means ``default_spec``."""
        if not isinstance(raw, Mapping):
            raise PartitionSpecError(f"{where}: must be an object with name and partitionSpec")
        extra = sorted(set(raw) - {"name", "partitionSpec", "shape", "dtype"})
        if extra:
            raise PartitionSpecError(f"{where}: unknown field(s) {', '.join(extra)}")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise PartitionSpecError(f"{where}.name: must be a non-empty string")
        if raw.get("partitionSpec") is not None:
            spec = parse_spec(raw["partitionSpec"], f"{where}.partitionSpec")
        elif default_spec is not None:
            spec = default_spec
        else:
            raise PartitionSpecError(f"{where}.partitionSpec: missing, and no default PartitionSpec applies")
        shape = raw.get("shape")
        if shape is not None and (
            not isinstance(shape, list | tuple)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
        ):
            raise PartitionSpecError(f"{where}.shape: must be an array of positive integers")
        dtype = raw.get("dtype", "float32")
        if not isinstance(dtype, str):
            raise PartitionSpecError(f"{where}.dtype: must be a string")
        return cls(name, spec, tuple(shape) if shape is not None else None, dtype)


def array_problems(kind: str, array: ArraySpec, sizes: Mapping[str, int]) -> list[str]:
    """One array's PartitionSpec against the mesh axis sizes (and its shape, when known)."""

    label = f"{kind} {array.name!r} PartitionSpec {format_spec(array.spec)}"
    problems = [f"{label} {p}" for p in axis_problems(array.spec, tuple(sizes))]
    if array.shape is None:
        return problems
    if kind == "input" and array.dtype not in SUPPORTED_DTYPES:
        problems.append(f"{kind} {array.name!r} dtype {array.dtype!r} is not one of {SUPPORTED_DTYPES}")
    if len(array.spec) > len(array.shape):
        problems.append(f"{label} has {len(array.spec)} entries for a rank-{len(array.shape)} array")
        return problems
    for dim, entry in enumerate(array.spec):
        axes = [a for a in spec_axes(entry) if a in sizes]
        split = math.prod(sizes[a] for a in axes)
        if axes and array.shape[dim] % split:
            over = " x ".join(f"{a!r} (size {sizes[a]})" for a in axes)
            problems.append(
                f"{kind} {array.name!r} dim {dim} (size {array.shape[dim]}) is not divisible by "
                f"mesh axis {over}"
            )
    return problems
