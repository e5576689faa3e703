"""What one SPMD validation run checks: a mesh, named arrays with PartitionSpecs, and a program.

This module is pure (no JAX) so the launcher can build, fingerprint and statically check a case before
paying for a JAX start-up, and so hosts can compare fingerprints. A PartitionSpec is kept as JSON would
carry it: one entry per array dimension, each ``null`` (replicated), an axis name, or a list of axis names.

The case JSON (``--case FILE``; a plan bundle's ``mesh`` + ``validation`` section is the same thing, see
``case_from_bundle``)::

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datajax_runtime.bundle import PlanBundle
from datajax_runtime.partition_spec import ArraySpec, array_problems

DEFAULT_AXES = ("data", "model")


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
            inputs=tuple(ArraySpec.from_json(a, f"inputs[{i}]") for i, a in enumerate(raw.get("inputs", []))),
            outputs=tuple(
                ArraySpec.from_json(a, f"outputs[{i}]") for i, a in enumerate(raw.get("outputs", []))
            ),
            seed=int(raw.get("seed", 0)),
        )

    def fingerprint(self) -> bytes:
        """SHA-256 of the canonical JSON: hosts that read different plans get different fingerprints."""

        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).digest()


def plan_digest(case: MeshCase) -> str:
    """The short form of the case's fingerprint that a host reports and a verdict names."""

    return case.fingerprint().hex()[:12]


PLAN_DISAGREEMENT = "hosts disagree on the plan they loaded: "


def plan_disagreement(digests: Mapping[int, str]) -> str | None:
    """The verdict on hosts (process id -> ``plan_digest``) that loaded different plans; None when all
    agree. One wording, whoever compares: the launcher (from the digests each host reported before
    any collective) and each worker (from its cross-host all-gather)."""

    groups: dict[str, list[int]] = {}
    for host in sorted(digests):
        groups.setdefault(digests[host], []).append(host)
    if len(groups) < 2:
        return None
    return PLAN_DISAGREEMENT + "; ".join(
        f"hosts {hosts} read plan {digest}" for digest, hosts in groups.items()
    )


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


class CaseError(ValueError):
    """The bundle does not say enough to build a validation case; the message says what to add."""


def case_from_bundle(bundle: PlanBundle) -> MeshCase:
    """The validation case a plan bundle describes, on the bundle's own mesh.

    With a ``validation`` section: its program, sample inputs and outputs (PartitionSpecs defaulting to
    the bundle's ``partitionSpecs``). Without one, the built-in attention projection on a
    ``('data', 'model')`` mesh, with the activations ``x`` sharded by ``partitionSpecs.input`` and the
    result ``out`` checked against ``partitionSpecs.output`` - the specs the bundle states.
    """

    if bundle.validation is not None:
        v = bundle.validation
        return MeshCase(bundle.mesh_axes, bundle.mesh_shape, v.program, v.inputs, v.outputs, v.seed)
    if sorted(bundle.mesh_axes) != sorted(DEFAULT_AXES):
        raise CaseError(
            f"the bundle has no validation section and its mesh axes {bundle.mesh_axes} are not "
            f"tpu-inference's {DEFAULT_AXES}: add validation.program and validation.inputs to check it"
        )
    sizes = dict(zip(bundle.mesh_axes, bundle.mesh_shape, strict=True))
    base = attention_projection_case(sizes["data"], sizes["model"])
    x, *weights = base.inputs
    if bundle.input_spec is not None:
        x = ArraySpec(x.name, bundle.input_spec, x.shape, x.dtype)
    out = base.outputs[-1]
    if bundle.output_spec is not None:
        out = ArraySpec(out.name, bundle.output_spec)
    return MeshCase(bundle.mesh_axes, bundle.mesh_shape, base.program, (x, *weights), (out,), base.seed)
