"""Device enumeration check against recorded ``jax.devices()`` descriptions of real slice shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datajax_runtime.devices import DeviceRecord, ExpectedSlice, check_devices, generation_of

HERE = Path(__file__).parent


def _records(name: str) -> list[DeviceRecord]:
    return [DeviceRecord.from_json(r) for r in json.loads((HERE / name).read_text())]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("v5e-2x2.json", ExpectedSlice("v5e", "2x2", chips=4, hosts=1)),
        ("v6e-2x4.json", ExpectedSlice("v6e", "2x4", chips=8, hosts=1)),
        ("v6e-4x4-multihost.json", ExpectedSlice("v6e", "4x4", chips=16, hosts=4)),
    ],
)
def test_recorded_slices_match_their_plan(name: str, expected: ExpectedSlice) -> None:
    check = check_devices(_records(name), expected)
    assert check.ok, check.problems
    out = check.to_json()
    assert out["observed"]["topology"] == expected.topology
    assert out["observed"]["hosts"] == expected.hosts and out["observed"]["chips"] == expected.chips


def test_device_kinds_map_to_generations() -> None:
    assert generation_of("TPU v5 lite") == "v5e" and generation_of("TPU v5e") == "v5e"
    assert generation_of("TPU v6 lite") == "v6e" and generation_of("TPU v6e") == "v6e"
    assert generation_of("TPU v5") == "v5p"  # not v5e: "TPU v5" is the performance part
    assert generation_of("cpu") is None


def test_wrong_generation_is_named() -> None:
    check = check_devices(_records("v5e-2x2.json"), ExpectedSlice("v6e", "2x2", chips=4, hosts=1))
    assert [p.check for p in check.problems] == ["generation"]
    assert "'TPU v6 lite'" in check.problems[0].message and "TPU v5 lite" in check.problems[0].message


def test_missing_host_is_caught_by_chips_hosts_and_topology() -> None:
    records = [r for r in _records("v6e-4x4-multihost.json") if r.process_index != 3]
    check = check_devices(records, ExpectedSlice("v6e", "4x4", chips=16, hosts=4))
    assert [p.check for p in check.problems] == ["chips", "hosts", "topology"]
    assert "3 processes [0, 1, 2]" in check.problems[1].message
    assert "holes" in check.problems[2].message


def test_other_topology_with_same_chip_count_is_caught() -> None:
    check = check_devices(_records("v6e-4x4-multihost.json"), ExpectedSlice("v6e", "2x8", chips=16, hosts=4))
    assert [p.check for p in check.problems] == ["topology"]
    assert "2x8x1 box" in check.problems[0].message and "4x4x1" in check.problems[0].message


def test_uneven_hosts_are_caught() -> None:
    records = _records("v6e-2x4.json")
    records = [DeviceRecord(r.id, 0 if r.id < 6 else 1, r.device_kind, r.coords) for r in records]
    check = check_devices(records, ExpectedSlice("v6e", "2x4", chips=8, hosts=2))
    assert [p.check for p in check.problems] == ["hosts"]
    assert "{0: 6, 1: 2}" in check.problems[0].message


def test_outcome_json_shape() -> None:
    check = check_devices(_records("v5e-2x2.json"), ExpectedSlice("v5e", "2x2", chips=4, hosts=1))
    assert check.to_json() == {
        "ok": True,
        "expected": {"generation": "v5e", "topology": "2x2", "chips": 4, "hosts": 1},
        "observed": {
            "generation": "v5e",
            "deviceKinds": ["TPU v5 lite"],
            "chips": 4,
            "devices": 4,
            "hosts": 1,
            "chipsPerHost": {"0": 4},
            "topology": "2x2",
        },
        "problems": [],
    }


def test_startup_check_on_this_host_reports_the_cpu_and_writes_the_outcome(tmp_path: Path) -> None:
    # The real jax.devices() of this machine: one CPU device, no TPU coordinates.
    from datajax_runtime.devices import startup_check

    outcome = tmp_path / "devices.json"
    check = startup_check(ExpectedSlice("v6e", "1x1", chips=1, hosts=1), outcome)
    assert [p.check for p in check.problems] == ["generation"]
    assert "['cpu']" in check.problems[0].message
    written = json.loads(outcome.read_text())
    assert written["ok"] is False and written["observed"]["deviceKinds"] == ["cpu"]
    assert outcome.stat().st_mode & 0o777 == 0o644
