"""DevicesMatch: the plugin's device check, exported by the sidecar, read by the operator as a condition."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from djm_fixtures import model_with

from datajax_operator.observe import sidecar_figures
from datajax_operator.plan import OperatorConfig, make_plan
from datajax_operator.status import SidecarFigures, SidecarScrape, Verdict, judge, settle, transitions
from datajax_runtime.devices import DeviceRecord, ExpectedSlice, check_devices
from datajax_runtime.exporter import ExportState, render
from datajax_runtime.plan_status import PlanStatus
from datajax_runtime.window import Pricing, figures

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
PRICING = Pricing(chips=4, usd_per_chip_hour=1.2)
EXPECTED = ExpectedSlice("v5e", "2x2", chips=4, hosts=1)
FULL = [  # what JAX enumerated on a real v5e 2x2 slice
    DeviceRecord.from_json(r)
    for r in json.loads((Path(__file__).parent / "devices" / "v5e-2x2.json").read_text(encoding="utf-8"))
]


def _sidecar_text(devices: dict[str, Any] | None) -> str:
    """The sidecar's own exposition for a plan status with this device check (None: none ran)."""
    plan = PlanStatus(True, "Registered", "registered", devices=devices)
    return render(ExportState(figures(None, PRICING), PRICING, True, 0, None, True, plan, "m"))


def _read(devices: dict[str, Any] | None) -> SidecarFigures:
    return sidecar_figures(_sidecar_text(devices))


def _judged(*sidecars: SidecarFigures | None, plan: bool = True) -> dict[str, tuple[str, str, str]]:
    model = model_with(plan={"configMapRef": {"name": "bundle"}}) if plan else model_with()
    scrapes = tuple(
        SidecarScrape(f"10.0.0.{i}:9400", f, None if f is not None else "refused")
        for i, f in enumerate(sidecars, start=2)
    )
    plan_ = make_plan(model, OperatorConfig())
    judgement = judge(model.spec, 1, None, scrapes, NOW, slice_usd_per_hour=plan_.cost.usd_per_hour)
    return {v.type: (v.status, v.reason, v.message) for v in judgement.verdicts}


def test_the_operator_reads_the_sidecars_device_gauge() -> None:
    assert _read(check_devices(FULL, EXPECTED).to_json()).devices_match is True
    assert _read(check_devices(FULL[:3], EXPECTED).to_json()).devices_match is False
    assert _read(None).devices_match is None  # no check ran: the sidecar exports no gauge


def test_devices_match_condition_from_every_slice() -> None:
    match = _read(check_devices(FULL, EXPECTED).to_json())
    mismatch = _read(check_devices(FULL[:3], EXPECTED).to_json())
    unchecked = _read(None)

    assert _judged(match, match)["DevicesMatch"][:2] == ("True", "Match")
    status, reason, message = _judged(match, mismatch)["DevicesMatch"]
    assert (status, reason) == ("False", "Mismatch")
    assert "1 of 2 slice(s) (10.0.0.3:9400)" in message
    assert _judged(match, unchecked)["DevicesMatch"][:2] == ("Unknown", "NotChecked")
    assert _judged(mismatch, unchecked)["DevicesMatch"][:2] == ("False", "Mismatch")  # a known mismatch wins
    assert _judged(None)["DevicesMatch"][:2] == ("Unknown", "NoMetrics")
    assert "DevicesMatch" not in _judged(match, plan=False)  # no plan bundle: no check, no condition


@pytest.mark.parametrize("before", [None, "Unknown"])
def test_a_mismatch_is_a_warning_event_even_when_it_was_never_true(before: str | None) -> None:
    mismatch = _read(check_devices(FULL[:3], EXPECTED).to_json())
    model = model_with(plan={"configMapRef": {"name": "bundle"}})
    scrape = (SidecarScrape("10.0.0.2:9400", mismatch),)
    verdicts = list(judge(model.spec, 1, None, scrape, NOW, slice_usd_per_hour=4.8).verdicts)
    previous = (
        [] if before is None else settle([Verdict("DevicesMatch", "Unknown", "NotChecked", "")], [], 1, NOW)
    )
    moved = [
        t
        for t in transitions(previous, settle(verdicts, previous, 1, NOW))
        if t.condition.type == "DevicesMatch"
    ]
    assert [t.event_type for t in moved] == ["Warning"]
