"""The device check end to end: renderer env -> vLLM plugin -> plan status -> sidecar gauge and log.

The enumeration is real (a child process runs jax.devices() on this machine's CPU, so a TPU plan is a
mismatch); the matching case uses the recorded v5e 2x2 slice the device-check unit tests use.
"""

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from datajax_operator.api import DataJaxModel
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan
from datajax_operator.render.objects import render_objects
from datajax_runtime import plugin
from datajax_runtime.devices import (
    EXPECTED_PLACEMENT_ENV,
    DeviceRecord,
    ExpectedSlice,
    check_devices,
    startup_check,
)
from datajax_runtime.plan_status import PlanStatus, read_plan_status, write_plan_status
from datajax_runtime.sidecar import Sidecar, SidecarConfig
from datajax_runtime.window import Pricing

HERE = Path(__file__).parent
EXAMPLES = HERE.parents[2] / "examples"
V5E_2X2 = [DeviceRecord.from_json(r) for r in json.loads((HERE / "v5e-2x2.json").read_text())]


def _containers(path: Path) -> dict[str, list[dict[str, Any]]]:
    """vllm container env by pod role, for an example's rendered workload."""
    import yaml

    model = DataJaxModel.model_validate(yaml.safe_load(path.read_text()))
    plan = make_plan(model, OperatorConfig())
    workload = next(
        o
        for o in render_objects(model, plan, OperatorConfig())
        if o["kind"] in ("Deployment", "LeaderWorkerSet")
    )
    spec = workload["spec"]
    templates = (
        {"leader": spec["template"]}
        if workload["kind"] == "Deployment"
        else {
            "leader": spec["leaderWorkerTemplate"]["leaderTemplate"],
            "worker": spec["leaderWorkerTemplate"]["workerTemplate"],
        }
    )
    return {role: t["spec"]["containers"][0].get("env", []) for role, t in templates.items()}


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("qwen2.5-1.5b-v5e.yaml", ExpectedSlice("v5e", "2x2", 4, 1)),
        ("llama3-70b-v6e.yaml", ExpectedSlice("v6e", "2x4", 8, 1)),
        ("llama3-70b-multihost-v6e.yaml", ExpectedSlice("v6e", "4x4", 16, 4)),
    ],
)
def test_every_pod_is_told_the_planned_placement(example: str, expected: ExpectedSlice) -> None:
    """Each host checks its own chips, so workers are told too (a leader-only check of a multi-host
    slice would wait for peers that never run JAX at plugin time)."""
    envs = _containers(EXAMPLES / example)
    for role, env in envs.items():
        (value,) = [e["value"] for e in env if e["name"] == EXPECTED_PLACEMENT_ENV]
        document = json.loads(value)
        assert ExpectedSlice.from_json(document) == expected, role
        assert document["chipsPerHost"] == expected.chips_per_host
    assert set(envs) == ({"leader"} if expected.hosts == 1 else {"leader", "worker"})


def test_users_cannot_override_the_expected_placement() -> None:
    doc = {
        "apiVersion": "datajax.dev/v1alpha1",
        "kind": "DataJaxModel",
        "metadata": {"name": "m"},
        "spec": {
            "model": {"name": "org/model"},
            "tpu": {"generation": "v6e", "topology": "2x4"},
            "serving": {"env": [{"name": EXPECTED_PLACEMENT_ENV, "value": "{}"}]},
        },
    }
    from datajax_operator.plan.problems import PlanError

    with pytest.raises((PlanError, ValidationError), match=EXPECTED_PLACEMENT_ENV):
        make_plan(DataJaxModel.model_validate(doc), OperatorConfig())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "must be a JSON object"),
        ({"generation": "v6e", "topology": "2x4", "chips": 0, "hosts": 1}, "positive integer"),
        ({"generation": "v6e", "chips": 8, "hosts": 1}, "string generation and topology"),
    ],
)
def test_a_malformed_placement_is_refused(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExpectedSlice.from_json(raw)


@pytest.fixture
def pod_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The vllm container's env as rendered for a pod without a bundle, plus a status path."""
    status = tmp_path / "run" / "plan-status.json"
    monkeypatch.setenv("DATAJAX_PLAN_STATUS", str(status))
    monkeypatch.delenv("DATAJAX_PLAN_BUNDLE", raising=False)
    # setenv records "absent" so the outcome the plugin leaves in os.environ is removed afterwards
    monkeypatch.setenv(plugin.DEVICE_OUTCOME_ENV, "")
    return status


def test_plugin_checks_the_real_devices_and_records_the_mismatch(
    pod_env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(EXPECTED_PLACEMENT_ENV, '{"chips":4,"generation":"v5e","hosts":1,"topology":"2x2"}')
    with caplog.at_level(logging.ERROR, logger="datajax_runtime.plugin"):
        plugin.register()
    status = read_plan_status(pod_env)
    assert status is not None and status.reason == "NoBundle" and status.devices_match is False
    assert status.devices is not None
    assert status.devices["observed"]["deviceKinds"] == ["cpu"]
    assert {p["check"] for p in status.devices["problems"]} >= {"chips", "generation"}
    assert "v5e 2x2 mismatch: chips: plan has 4 chips, JAX sees 1 devices" in status.devices["message"]
    assert "datajax devices: v5e 2x2 mismatch" in caplog.text


def test_later_vllm_processes_reuse_the_first_outcome(pod_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = ExpectedSlice("v5e", "2x2", 4, 1)
    monkeypatch.setenv(EXPECTED_PLACEMENT_ENV, '{"chips":4,"generation":"v5e","hosts":1,"topology":"2x2"}')
    # The API server process checked the recorded slice; the engine process inherits its environment.
    monkeypatch.setenv(plugin.DEVICE_OUTCOME_ENV, json.dumps(check_devices(V5E_2X2, expected).to_json()))
    plugin.register()
    status = read_plan_status(pod_env)
    assert status is not None and status.devices_match is True
    assert status.devices is not None
    assert status.devices["message"] == "v5e 2x2: 4 chips on 1 host(s) as planned"


def test_without_an_expected_placement_no_check_runs(pod_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXPECTED_PLACEMENT_ENV, raising=False)
    plugin.register()
    status = read_plan_status(pod_env)
    assert status is not None and status.devices is None and status.devices_match is None


def test_startup_check_enumerates_in_a_child_and_reports_this_cpu() -> None:
    check = startup_check(ExpectedSlice("v6e", "1x1", chips=1, hosts=1))
    assert [p.check for p in check.problems] == ["generation"]
    assert "['cpu']" in check.problems[0].message


def test_a_failed_enumeration_is_a_problem_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAX_PLATFORMS", "tpu")  # no TPU here: JAX refuses to start in the child
    check = startup_check(ExpectedSlice("v6e", "2x4", chips=8, hosts=1))
    assert [p.check for p in check.problems] == ["enumeration"]
    assert check.problems[0].message.startswith("device enumeration exited 1")


def _scrape(sidecar: Sidecar) -> None:
    async def once() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
            await sidecar.scrape_once(session)

    asyncio.run(once())


def _gauge(exposition: str, name: str) -> float | None:
    for line in exposition.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def test_sidecar_exports_the_device_check_and_logs_a_mismatch_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    status_path = tmp_path / "plan-status.json"
    config = SidecarConfig(
        upstream="http://127.0.0.1:9/metrics",  # discard port: nothing listens, the scrape fails fast
        pricing=Pricing(chips=4, usd_per_chip_hour=1.2, ceiling_usd_per_million_tokens=3.0),
        plan_status_path=str(status_path),
    )
    sidecar = Sidecar(config)
    write_plan_status(status_path, PlanStatus(registered=False, reason="NoBundle", message="no bundle"))
    _scrape(sidecar)
    assert _gauge(sidecar.exposition, "datajax_devices_match") is None  # no check ran: no gauge

    mismatch = check_devices(V5E_2X2[:3], ExpectedSlice("v5e", "2x2", 4, 1)).to_json()
    write_plan_status(status_path, PlanStatus(False, "NoBundle", "no bundle", devices=mismatch))
    with caplog.at_level(logging.ERROR, logger="datajax_runtime.sidecar"):
        _scrape(sidecar)
        _scrape(sidecar)
    assert _gauge(sidecar.exposition, "datajax_devices_match") == 0.0
    logged = [r.getMessage() for r in caplog.records if "do not match the plan" in r.getMessage()]
    assert logged == [f"TPU devices do not match the plan: {mismatch['message']}"]

    ok = check_devices(V5E_2X2, ExpectedSlice("v5e", "2x2", 4, 1)).to_json()
    write_plan_status(status_path, PlanStatus(False, "NoBundle", "no bundle", devices=ok))
    _scrape(sidecar)
    assert _gauge(sidecar.exposition, "datajax_devices_match") == 1.0
