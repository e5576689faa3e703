"""What one SPMD validation run checks: a mesh, named arrays with PartitionSpecs, and a program.

This module is pure (no JAX) so the launcher can build, fingerprint and statically check a case before
paying for a JAX start-up, and so hosts can compare fingerprints. A PartitionSpec is kept as JSON would
carry it: one entry per array dimension, each ``null`` (replicated), an axis name, or a list of axis names.

The case JSON (``--case FILE``; the plan bundle carries the same mesh and PartitionSpecs)::

    {"mesh": {"axes": ["data", "model"], "shape": [1, 4]},
     "program": "attention_projection" | "package.module:function",
     "seed": 0,
     "inputs":  [{"name": "x", "shape": [8, 128], "dtype": "float32", "partitionSpec": ["data", null]}],
     "outputs": [{"name": "out", "partitionSpec": ["data", null]}]}
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SpecEntry = str | tuple[str, ...] | None
DEFAULT_AXES = ("data", "model")
SUPPORTED_DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class ArraySpec:
    """A named input (shape and dtype known) or output (shape found by running) with its PartitionSpec."""

    name: str
    spec: tuple[SpecEntry, ...]
    shape: tuple[int, ...] | None = None
    dtype: str = "float32"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "partitionSpec": [_entry_json(e) for e in self.spec]}
        if self.shape is not None:
            out["shape"] = list(self.shape)
            out["dtype"] = self.dtype
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ArraySpec:
        shape = raw.get("shape")
        return cls(
            name=str(raw["name"]),
            spec=tuple(_entry(e) for e in raw.get("partitionSpec", [])),
            shape=tuple(int(s) for s in shape) if shape is not None else None,
            dtype=str(raw.get("dtype", "float32")),
        )


@dataclass(frozen=True)
class MeshCase:
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    program: str
    inputs: tuple[ArraySpec, ...]
    outputs: tuple[ArraySpec, ...]
    seed: int = 0

    @property
    def devices(self) -> int:
        return math.prod(self.shape)

    def to_json(self) -> dict[str, Any]:
        return {
            "mesh": {"axes": list(self.axes), "shape": list(self.shape)},
            "program": self.program,
            "seed": self.seed,
            "inputs": [a.to_json() for a in self.inputs],
            "outputs": [a.to_json() for a in self.outputs],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> MeshCase:
        mesh = raw["mesh"]
        return cls(
            axes=tuple(str(a) for a in mesh["axes"]),
            shape=tuple(int(s) for s in mesh["shape"]),
            program=str(raw["program"]),
            inputs=tuple(ArraySpec.from_json(a) for a in raw.get("inputs", [])),
            outputs=tuple(ArraySpec.from_json(a) for a in raw.get("outputs", [])),
            seed=int(raw.get("seed", 0)),
        )

    def fingerprint(self) -> bytes:
        """SHA-256 of the canonical JSON: hosts that read different plans get different fingerprints."""

        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).digest()


def _entry(raw: Any) -> SpecEntry:
    if raw is None or isinstance(raw, str):
        return raw
    return tuple(str(a) for a in raw)


def _entry_json(entry: SpecEntry) -> Any:
    return list(entry) if isinstance(entry, tuple) else entry


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


def static_problems(case: MeshCase) -> list[str]:
    """Mis-sharding visible without running anything: each message names the array and the axis."""

    problems: list[str] = []
    if len(case.axes) != len(case.shape):
        problems.append(f"mesh axes {case.axes} and shape {case.shape} differ in length")
    if len(set(case.axes)) != len(case.axes):
        problems.append(f"mesh axes {case.axes} repeat a name")
    sizes = dict(zip(case.axes, case.shape, strict=False))
    for kind, arrays in (("input", case.inputs), ("output", case.outputs)):
        for array in arrays:
            problems.extend(array_problems(kind, array, sizes))
    return problems


def array_problems(kind: str, array: ArraySpec, sizes: Mapping[str, int]) -> list[str]:
    """One array's PartitionSpec against the mesh axis sizes (and its shape, when known)."""

    problems: list[str] = []
    mesh_text = "(" + ", ".join(repr(a) for a in sizes) + ")"
    label = f"{kind} {array.name!r} PartitionSpec {format_spec(array.spec)}"
    used: list[str] = []
    for entry in array.spec:
        for axis in spec_axes(entry):
            if axis not in sizes:
                problems.append(f"{label} names mesh axis {axis!r}, which the mesh {mesh_text} lacks")
            elif axis in used:
                problems.append(f"{label} uses mesh axis {axis!r} for two dimensions")
            used.append(axis)
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


def attention_projection_case(data_parallel: int, tensor_parallel: int, seed: int = 0) -> MeshCase:
    """tpu-inference's default mesh ``('data', 'model')`` with attention-projection-shaped weights.

    ``q = x @ w_q`` is column-parallel (heads split over ``model``), ``out = q @ w_o`` row-parallel (an
    all-reduce over ``model``), tokens split over ``data`` - the two sharding patterns every decoder
    layer uses, sized so every split divides: 8 tokens per data shard, 2 heads of 32 per model shard.
    """

    tokens, hidden, heads, head_dim = 8 * data_parallel, 128, 2 * tensor_parallel, 32
    return MeshCase(
        axes=DEFAULT_AXES,
        shape=(data_parallel, tensor_parallel),
        program="attention_projection",
        seed=seed,
        inputs=(
            ArraySpec("x", ("data", None), (tokens, hidden)),
            ArraySpec("w_q", (None, "model"), (hidden, heads * head_dim)),
            ArraySpec("w_o", ("model", None), (heads * head_dim, hidden)),
        ),
        outputs=(ArraySpec("q", ("data", "model")), ArraySpec("out", ("data", None))),
    )
