"""TPU device enumeration check: does the slice JAX sees match the plan the operator paid for?

At start-up the runtime reads ``jax.devices()`` (device kind, coordinates, process index) and compares it
with the plan: chip count, hosts (distinct process indices, equal chips on each), the generation named by
the device kind, and the topology given by the coordinates' bounding box. A wrong node pool, a host that
never joined, or a slice of another shape is caught before vLLM compiles for minutes on the wrong mesh.

Device kinds (what ``jax.Device.device_kind`` reports), from JAX's own table
``jax/_src/pallas/mosaic/tpu_info.py::chip_version_from_device_kind`` (jax 0.10.2) and tpu-inference's
``get_device_name``/``get_tpu_version`` (``tpu_inference/utils.py``): v5e reports ``"TPU v5 lite"``
(``"TPU v5e"`` also accepted), v6e/Trillium ``"TPU v6 lite"`` (``"TPU v6e"`` also accepted), v5p
``"TPU v5"``/``"TPU v5p"``, Ironwood ``"TPU7x"``. Coordinates are ``(x, y, z)`` per chip; tpu-inference
records a v6e ``2x4`` host as x in 0..1, y in 0..3, z = 0, i.e. the bounding box of topology ``AxB`` is
``(A, B, 1)``.

The check itself is pure (records in, verdict out); ``records_from_jax`` and ``startup_check`` are the
thin edges the vLLM plugin calls. The verdict's ``to_json()`` is what the plugin writes next to the plan
status for the sidecar to export.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``device_kind`` strings per generation; the first is what real slices report.
DEVICE_KINDS: Mapping[str, tuple[str, ...]] = {
    "v5e": ("TPU v5 lite", "TPU v5e"),
    "v6e": ("TPU v6 lite", "TPU v6e"),
    "v5p": ("TPU v5", "TPU v5p"),
    "tpu7x": ("TPU7x",),
}


def generation_of(device_kind: str) -> str | None:
    """The catalog generation (``v5e``, ``v6e``, ...) of a JAX device kind, or ``None`` if not a known TPU."""

    for generation, kinds in DEVICE_KINDS.items():
        if device_kind in kinds:
            return generation
    return None


@dataclass(frozen=True)
class DeviceRecord:
    """One entry of ``jax.devices()`` as the check needs it (one device per chip on v5e/v6e)."""

    id: int
    process_index: int
    device_kind: str
    coords: tuple[int, ...]
    core_on_chip: int = 0

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DeviceRecord:
        return cls(
            id=int(raw["id"]),
            process_index=int(raw["process_index"]),
            device_kind=str(raw["device_kind"]),
            coords=tuple(int(c) for c in raw["coords"]),
            core_on_chip=int(raw.get("core_on_chip", 0)),
        )


@dataclass(frozen=True)
class ExpectedSlice:
    """What the plan placed: generation, ``AxB[xC]`` topology, chips in the slice and hosts (VMs)."""

    generation: str
    topology: str
    chips: int
    hosts: int


@dataclass(frozen=True)
class DeviceProblem:
    check: str  # chips | hosts | generation | topology
    message: str


@dataclass(frozen=True)
class DeviceCheck:
    expected: ExpectedSlice
    observed: Mapping[str, Any]
    problems: tuple[DeviceProblem, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The documented outcome shape (docs/spmd-validation.md): camelCase, stable keys."""

        e = self.expected
        return {
            "ok": self.ok,
            "expected": {
                "generation": e.generation,
                "topology": e.topology,
                "chips": e.chips,
                "hosts": e.hosts,
            },
            "observed": dict(self.observed),
            "problems": [{"check": p.check, "message": p.message} for p in self.problems],
        }


def _topology_dims(topology: str) -> tuple[int, ...]:
    dims = tuple(int(part) for part in topology.lower().split("x"))
    return dims + (1,) * (3 - len(dims))


def check_devices(devices: Sequence[DeviceRecord], expected: ExpectedSlice) -> DeviceCheck:
    """Compare what JAX enumerated with the plan; every mismatch becomes one problem naming the check."""

    problems: list[DeviceProblem] = []
    chips = len({d.coords for d in devices})
    per_host = Counter(d.process_index for d in devices)
    kinds = sorted({d.device_kind for d in devices})
    generations = sorted({generation_of(k) or f"unknown ({k})" for k in kinds})

    if len(devices) != expected.chips or chips != expected.chips:
        problems.append(
            DeviceProblem(
                "chips",
                f"plan has {expected.chips} chips, JAX sees {len(devices)} devices on {chips} distinct chips",
            )
        )
    if len(per_host) != expected.hosts:
        problems.append(
            DeviceProblem(
                "hosts",
                f"plan has {expected.hosts} hosts, devices come from {len(per_host)} processes "
                f"{sorted(per_host)}",
            )
        )
    if expected.hosts > 0 and expected.chips % expected.hosts == 0:
        want = expected.chips // expected.hosts
        uneven = {p: n for p, n in sorted(per_host.items()) if n != want}
        if uneven:
            problems.append(
                DeviceProblem("hosts", f"each host should own {want} chips; process -> chips {uneven}")
            )
    if generations != [expected.generation]:
        want_kind = DEVICE_KINDS.get(expected.generation, ("?",))[0]
        problems.append(
            DeviceProblem(
                "generation",
                f"plan is {expected.generation} ({want_kind!r}), JAX reports device kinds {kinds}",
            )
        )

    observed_dims: tuple[int, ...] = ()
    if devices:
        rank = max(len(d.coords) for d in devices)
        coords = [d.coords + (0,) * (rank - len(d.coords)) for d in devices]
        observed_dims = tuple(max(c[i] for c in coords) - min(c[i] for c in coords) + 1 for i in range(rank))
        observed_dims = observed_dims + (1,) * (3 - len(observed_dims))
        want_dims = _topology_dims(expected.topology)
        if sorted(observed_dims) != sorted(want_dims):
            problems.append(
                DeviceProblem(
                    "topology",
                    f"plan topology {expected.topology} is a {_fmt(want_dims)} box, the chips' coordinates "
                    f"span {_fmt(observed_dims)}",
                )
            )
        elif math.prod(observed_dims) != chips:
            problems.append(
                DeviceProblem(
                    "topology",
                    f"{chips} chips do not fill their {_fmt(observed_dims)} bounding box: "
                    "the slice has holes",
                )
            )

    observed = {
        "generation": generations[0] if len(generations) == 1 else None,
        "deviceKinds": kinds,
        "chips": chips,
        "devices": len(devices),
        "hosts": len(per_host),
        "chipsPerHost": {str(p): n for p, n in sorted(per_host.items())},
        "topology": _fmt(observed_dims[:2] if observed_dims[2:] == (1,) else observed_dims)
        if observed_dims
        else None,
    }
    return DeviceCheck(expected=expected, observed=observed, problems=tuple(problems))


def _fmt(dims: Iterable[int]) -> str:
    return "x".join(str(d) for d in dims)


def records_from_jax(devices: Iterable[Any]) -> list[DeviceRecord]:
    """Read the attributes the check needs from ``jax.Device`` objects (CPU devices have no coords)."""

    return [
        DeviceRecord(
            id=int(d.id),
            process_index=int(d.process_index),
            device_kind=str(d.device_kind),
            coords=tuple(int(c) for c in getattr(d, "coords", ())),
            core_on_chip=int(getattr(d, "core_on_chip", 0)),
        )
        for d in devices
    ]


def startup_check(expected: ExpectedSlice, outcome_path: Path | None = None) -> DeviceCheck:
    """Enumerate the slice with JAX, check it, and (when given a path) write the JSON outcome atomically."""

    import jax

    check = check_devices(records_from_jax(jax.devices()), expected)
    if outcome_path is not None:
        tmp = outcome_path.with_suffix(outcome_path.suffix + ".tmp")
        tmp.write_text(json.dumps(check.to_json(), indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o644)  # the sidecar reads it as a non-root user
        tmp.replace(outcome_path)
    return check
