"""Issue 15 items 2 and 3 on the runtime side: a multi-host slice is checked per host (no JAX, no
waiting for peers), and a TPU7x chip is two JAX devices.

The host check reads a sysfs tree laid out as /sys/bus/pci/devices is (one directory per PCI function
with `vendor` and `device` files); the tests build such trees on disk and read them with the same code.
Before issue 15 the leader enumerated the whole slice through JAX (a 120 s wait for hosts that never
run JAX at plugin time) and counted one device per chip.
"""

import json
import time
from pathlib import Path

import pytest

from datajax_runtime import plugin
from datajax_runtime.devices import (
    EXPECTED_PLACEMENT_ENV,
    DeviceRecord,
    ExpectedSlice,
    check_devices,
    check_host,
    host_chips,
    startup_check,
)

V6E = "0x006f"
V5E = "0x0063"


def _sysfs(root: Path, functions: list[tuple[str, str]]) -> Path:
    for i, (vendor, device) in enumerate(functions):
        d = root / f"0000:00:{i:02x}.0"
        d.mkdir(parents=True)
        (d / "vendor").write_text(vendor + "\n")
        (d / "device").write_text(device + "\n")
    return root


def test_host_chips_reads_only_google_functions(tmp_path: Path) -> None:
    root = _sysfs(tmp_path, [("0x1ae0", V6E)] * 4 + [("0x8086", "0x1234"), ("0x1ae0", V6E)])
    assert host_chips(root) == [V6E] * 5


def test_each_host_of_a_multihost_slice_checks_its_own_chips_without_jax(tmp_path: Path) -> None:
    expected = ExpectedSlice("v6e", "4x4", chips=16, hosts=4)
    root = _sysfs(tmp_path, [("0x1ae0", V6E)] * 4)
    start = time.monotonic()
    check = startup_check(expected, timeout=0.001, pci_root=root)
    # A JAX enumeration with a 1 ms timeout could only fail: the verdict comes from sysfs.
    assert check.ok, check.problems
    assert time.monotonic() - start < 1.0
    assert check.observed == {"scope": "host", "generation": "v6e", "chips": 4, "pciDeviceIds": [V6E]}
    assert "this host has its 4 of 16 chips" in check.message


def test_a_host_with_missing_or_foreign_chips_is_named(tmp_path: Path) -> None:
    expected = ExpectedSlice("v6e", "4x4", chips=16, hosts=4)
    check = check_host([V5E, V5E], expected)
    assert [p.check for p in check.problems] == ["chips", "generation"]
    assert "this host has 2 TPU PCI devices" in check.problems[0].message
    assert "v5e" in check.problems[1].message


def test_the_plugin_on_a_worker_host_runs_the_host_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a worker pod's Ray worker process does: the operator now sets the placement on every pod."""
    monkeypatch.setattr("datajax_runtime.devices.PCI_DEVICES", _sysfs(tmp_path, [("0x1ae0", V6E)] * 3))
    monkeypatch.delenv(plugin.DEVICE_OUTCOME_ENV, raising=False)
    placement = {
        "generation": "v6e",
        "topology": "4x4",
        "chips": 16,
        "hosts": 4,
        "chipsPerHost": 4,
        "devicesPerChip": 1,
    }
    monkeypatch.setenv(EXPECTED_PLACEMENT_ENV, json.dumps(placement))
    outcome = plugin.device_outcome()
    assert outcome is not None and not outcome["ok"]
    assert outcome["observed"]["scope"] == "host" and outcome["observed"]["chips"] == 3


def _tpu7x_records(chips: int, processes: int = 1) -> list[DeviceRecord]:
    records = []
    per_process = chips // processes
    for chip in range(chips):
        x, y, z = chip % 2, (chip // 2) % 2, chip // 4
        for core in (0, 1):
            records.append(DeviceRecord(2 * chip + core, chip // per_process, "TPU7x", (x, y, z), core))
    return records


def test_tpu7x_slices_have_two_devices_per_chip() -> None:
    check = check_devices(_tpu7x_records(4), ExpectedSlice("tpu7x", "2x2x1", chips=4, hosts=1))
    assert check.ok, check.problems
    assert (check.observed["chips"], check.observed["devices"]) == (4, 8)
    two_hosts = check_devices(
        _tpu7x_records(8, processes=2), ExpectedSlice("tpu7x", "2x2x2", chips=8, hosts=2)
    )
    assert two_hosts.ok, two_hosts.problems


def test_a_tpu7x_slice_seeing_one_core_per_chip_is_a_mismatch() -> None:
    one_core = [r for r in _tpu7x_records(4) if r.core_on_chip == 0]
    check = check_devices(one_core, ExpectedSlice("tpu7x", "2x2x1", chips=4, hosts=1))
    assert [p.check for p in check.problems][:1] == ["chips"]
    assert "(8 devices)" in check.problems[0].message


def test_a_placement_that_disagrees_with_the_runtime_catalog_is_refused() -> None:
    with pytest.raises(ValueError, match="devicesPerChip"):
        ExpectedSlice.from_json(
            {"generation": "tpu7x", "topology": "2x2x1", "chips": 4, "hosts": 1, "devicesPerChip": 1}
        )
