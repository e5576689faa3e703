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

Generations, device kinds, devices per chip and PCI device ids come from the TPU catalog
(``tpu_catalog.json`` next to this module, a copy of the operator's ``api/tpu_catalog.json`` that
``make crd`` writes and a unit test keeps identical). A TPU7x chip is two JAX devices (tpu-inference
``get_device_hbm_limit``; tpu-info ``devices_per_chip=2``), so the check counts devices as chips times
devices per chip and chips as distinct coordinates.

Which check runs depends on the slice. On a single-host slice the process sees the whole slice, so
the JAX check above runs. On a multi-host slice only the leader runs JAX at plugin time (the workers
run raylets, and vLLM's Ray workers start later), and a JAX enumeration that expects every host waits
for peers that never come; so each host checks only itself, without JAX: it counts the Google TPU PCI
functions in ``/sys/bus/pci/devices`` (vendor ``0x1ae0``, device id per generation; the method of
tpu-info, AI-Hypercomputer/cloud-accelerator-diagnostics ``tpu_info/tpu_info/device.py``) against the
plan's chips per host and generation. The plugin runs in every vLLM process, the Ray workers on the
worker hosts included, so every host logs its own verdict; the leader's reaches the sidecar.

The check itself is pure (records in, verdict out); ``records_from_jax``, ``host_chips`` and
``startup_check`` are the thin edges the vLLM plugin calls. ``startup_check`` enumerates in a child process
(``python -m datajax_runtime.devices``): a TPU chip is opened by one process at a time, so enumerating in
the plugin's own process (vLLM's API server) would hold the chips the engine core needs; the child
exits and releases them. The verdict's ``to_json()`` is what the plugin writes into the plan status
(``devices`` key) for the sidecar to export as ``datajax_devices_match``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Environment variable the operator sets on the vLLM container: the placement the plan paid for.
EXPECTED_PLACEMENT_ENV = "DATAJAX_EXPECTED_PLACEMENT"
#: JAX's TPU start-up takes seconds; a multi-host slice whose other hosts never join must not hang vLLM.
ENUMERATION_TIMEOUT_SECONDS = 120.0

#: The runtime's copy of the operator's TPU catalog (one record per generation).
CATALOG_PATH = Path(__file__).with_name("tpu_catalog.json")
_CATALOG: Mapping[str, Mapping[str, Any]] = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))[
    "generations"
]

#: ``device_kind`` strings per generation; the first is what real slices report.
DEVICE_KINDS: Mapping[str, tuple[str, ...]] = {g: tuple(r["deviceKinds"]) for g, r in _CATALOG.items()}
#: JAX devices per chip (2 on TPU7x, where each TensorCore is a device).
DEVICES_PER_CHIP: Mapping[str, int] = {g: int(r["devicesPerChip"]) for g, r in _CATALOG.items()}
#: PCI device id of a chip of each generation (vendor ``GOOGLE_PCI_VENDOR``).
PCI_DEVICE_IDS: Mapping[str, str] = {g: str(r["pciDeviceId"]) for g, r in _CATALOG.items()}
GOOGLE_PCI_VENDOR = "0x1ae0"
PCI_DEVICES = Path("/sys/bus/pci/devices")


def generation_of(device_kind: str) -> str | None:
    """The catalog generation (``v5e``, ``v6e``, ...) of a JAX device kind, or ``None`` if not a known TPU."""

    for generation, kinds in DEVICE_KINDS.items():
        if device_kind in kinds:
            return generation
    return None


@dataclass(frozen=True)
class DeviceRecord:
    """One entry of ``jax.devices()`` as the check needs it (two devices per chip on TPU7x)."""

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

    @property
    def devices_per_chip(self) -> int:
        return DEVICES_PER_CHIP.get(self.generation, 1)

    @property
    def devices(self) -> int:
        return self.chips * self.devices_per_chip

    @property
    def chips_per_host(self) -> int:
        return self.chips // self.hosts

    @classmethod
    def from_json(cls, raw: Any) -> ExpectedSlice:
        """The ``DATAJAX_EXPECTED_PLACEMENT`` document: ``{generation, topology, chips, hosts, ...}``.

        The operator also writes ``chipsPerHost`` and ``devicesPerChip``; they are read from the catalog
        here, and a document whose figures disagree with it is refused rather than half believed.
        """
        if not isinstance(raw, Mapping):
            raise ValueError("expected placement must be a JSON object")
        generation, topology, chips, hosts = (
            raw.get(k) for k in ("generation", "topology", "chips", "hosts")
        )
        if not isinstance(generation, str) or not isinstance(topology, str):
            raise ValueError("expected placement needs string generation and topology")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in (chips, hosts)):
            raise ValueError("expected placement needs positive integer chips and hosts")
        assert isinstance(chips, int) and isinstance(hosts, int)  # narrowed above; for mypy
        expected = cls(generation, topology, chips, hosts)
        for key, ours in (
            ("chipsPerHost", expected.chips_per_host),
            ("devicesPerChip", expected.devices_per_chip),
        ):
            if key in raw and raw[key] != ours:
                raise ValueError(
                    f"expected placement has {key}={raw[key]!r}, the runtime's catalog says {ours}"
                )
        return expected


@dataclass(frozen=True)
class DeviceProblem:
    check: str  # chips | hosts | generation | topology | enumeration
    message: str


@dataclass(frozen=True)
class DeviceCheck:
    expected: ExpectedSlice
    observed: Mapping[str, Any]
    problems: tuple[DeviceProblem, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def message(self) -> str:
        """One line for logs and the sidecar: the slice as planned, or every mismatch."""
        e = self.expected
        if self.ok and self.observed.get("scope") == "host":
            share = f"this host has its {e.chips_per_host} of {e.chips} chips"
            return f"{e.generation} {e.topology}: {share} as planned"
        if self.ok:
            return f"{e.generation} {e.topology}: {e.chips} chips on {e.hosts} host(s) as planned"
        return f"{e.generation} {e.topology} mismatch: " + "; ".join(
            f"{p.check}: {p.message}" for p in self.problems
        )

    def to_json(self) -> dict[str, Any]:
        """The documented outcome shape (docs/spmd-validation.md): camelCase, stable keys."""

        e = self.expected
        return {
            "ok": self.ok,
            "message": self.message,
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

    if len(devices) != expected.devices or chips != expected.chips:
        per_chip = f" ({expected.devices} devices)" if expected.devices_per_chip > 1 else ""
        problems.append(
            DeviceProblem(
                "chips",
                f"plan has {expected.chips} chips{per_chip}, JAX sees {len(devices)} devices on {chips} "
                "distinct chips",
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
        want = expected.devices // expected.hosts
        uneven = {p: n for p, n in sorted(per_host.items()) if n != want}
        if uneven:
            problems.append(
                DeviceProblem("hosts", f"each host should own {want} devices; process -> devices {uneven}")
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


def enumerate_in_child(timeout: float = ENUMERATION_TIMEOUT_SECONDS) -> list[DeviceRecord]:
    """``jax.devices()`` as read by a child process that exits afterwards (releasing the chips).

    Raises ``RuntimeError`` naming what went wrong (JAX missing, crash, timeout, unreadable output).
    """

    try:
        done = subprocess.run(
            [sys.executable, "-m", "datajax_runtime.devices"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"jax.devices() did not answer within {timeout:g}s") from None
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"device enumeration exited {done.returncode}: {tail}")
    try:
        return [DeviceRecord.from_json(r) for r in json.loads(done.stdout)]
    except (ValueError, KeyError, TypeError) as err:
        raise RuntimeError(f"device enumeration printed no device list: {err}") from None


def host_chips(root: Path | None = None) -> list[str]:
    """PCI device ids of the Google TPU functions this host sees (``/sys/bus/pci/devices/*``)."""

    found = []
    for function in sorted((root or PCI_DEVICES).glob("*")):
        try:
            vendor = (function / "vendor").read_text().strip()
            device = (function / "device").read_text().strip()
        except OSError:
            continue
        if vendor == GOOGLE_PCI_VENDOR:
            found.append(device)
    return found


def check_host(pci_ids: Sequence[str], expected: ExpectedSlice) -> DeviceCheck:
    """One host of a multi-host slice: its TPU chips (by PCI id) against the plan's chips per host."""

    by_id = {v: g for g, v in PCI_DEVICE_IDS.items()}
    generations = sorted({by_id.get(i, f"unknown ({i})") for i in pci_ids})
    problems = []
    if len(pci_ids) != expected.chips_per_host:
        problems.append(
            DeviceProblem(
                "chips",
                f"plan has {expected.chips_per_host} chips on each of {expected.hosts} hosts, this host has "
                f"{len(pci_ids)} TPU PCI devices",
            )
        )
    if pci_ids and generations != [expected.generation]:
        problems.append(
            DeviceProblem(
                "generation",
                f"plan is {expected.generation} (PCI device {PCI_DEVICE_IDS.get(expected.generation, '?')}), "
                f"this host's chips are {', '.join(generations)}",
            )
        )
    observed = {
        "scope": "host",
        "generation": generations[0] if len(generations) == 1 else None,
        "chips": len(pci_ids),
        "pciDeviceIds": sorted(set(pci_ids)),
    }
    return DeviceCheck(expected=expected, observed=observed, problems=tuple(problems))


def startup_check(
    expected: ExpectedSlice, timeout: float = ENUMERATION_TIMEOUT_SECONDS, pci_root: Path | None = None
) -> DeviceCheck:
    """Check what this process can see: the whole slice through JAX (in a child process) on a single
    host, this host's chips through sysfs on a multi-host slice; a failed enumeration is a problem."""

    if expected.hosts > 1:
        return check_host(host_chips(pci_root), expected)
    try:
        records = enumerate_in_child(timeout)
    except RuntimeError as err:
        return DeviceCheck(expected=expected, observed={}, problems=(DeviceProblem("enumeration", str(err)),))
    return check_devices(records, expected)


def _print_devices() -> None:
    """The child of ``enumerate_in_child``: print this process's view of ``jax.devices()`` as JSON."""

    import jax

    records = records_from_jax(jax.devices())
    print(
        json.dumps(
            [
                {
                    "id": r.id,
                    "process_index": r.process_index,
                    "device_kind": r.device_kind,
                    "coords": list(r.coords),
                    "core_on_chip": r.core_on_chip,
                }
                for r in records
            ]
        )
    )


if __name__ == "__main__":
    _print_devices()
