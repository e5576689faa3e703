"""SPMD validation on virtual CPU devices: correct plans pass, each kind of mis-sharding is named.

Every run starts real JAX processes (one per host, gloo collectives over 127.0.0.1); the multi-host
cases take ~6-8 s each on a shared 2-core machine.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from datajax_runtime.partition_spec import ArraySpec
from datajax_runtime.spmd import launcher
from datajax_runtime.spmd.__main__ import main
from datajax_runtime.spmd.case import MeshCase, attention_projection_case, plan_digest, static_problems
from datajax_runtime.spmd.launcher import Report, validate


@pytest.mark.parametrize(
    ("slice_name", "dp", "tp", "hosts"),
    [("v5e 2x2", 1, 4, 1), ("v6e 2x4", 1, 8, 1), ("v6e 2x4 dp=2", 2, 4, 1), ("v6e 4x4 multi-host", 1, 16, 4)],
)
def test_correct_plans_pass(slice_name: str, dp: int, tp: int, hosts: int) -> None:
    start = time.monotonic()
    report = validate(attention_projection_case(dp, tp), hosts)
    assert report.ok, (slice_name, report.problems)
    assert report.devices == dp * tp and report.hosts == hosts
    seconds = time.monotonic() - start
    print(f"{slice_name}: {report.hosts} process(es) x {report.devices // hosts} devices in {seconds:.1f}s")


def test_partition_spec_naming_an_axis_the_mesh_lacks() -> None:
    case = attention_projection_case(1, 4)
    w_q = ArraySpec("w_q", (None, "tensor"), (128, 256))
    report = validate(dataclasses.replace(case, inputs=(case.inputs[0], w_q, case.inputs[2])))
    assert not report.ok
    assert report.problems == (
        "input 'w_q' PartitionSpec P(None, 'tensor') names mesh axis 'tensor', "
        "which the mesh ('data', 'model') lacks",
    )


def test_axis_size_not_dividing_the_array_dimension() -> None:
    case = attention_projection_case(1, 8)
    w_q = ArraySpec("w_q", (None, "model"), (128, 100))
    problems = static_problems(dataclasses.replace(case, inputs=(case.inputs[0], w_q, case.inputs[2])))
    assert problems == ["input 'w_q' dim 1 (size 100) is not divisible by mesh axis 'model' (size 8)"]


def test_output_sharded_on_the_wrong_axis_single_host() -> None:
    case = attention_projection_case(2, 4)
    wrong = dataclasses.replace(case, outputs=(ArraySpec("q", ("model", "data")), case.outputs[1]))
    report = validate(wrong)
    assert not report.ok
    (problem,) = report.problems
    assert problem.startswith(
        "output 'q' is mis-sharded: the plan says P('model', 'data'), the lowering produced"
    )
    assert (
        "dim 0 should be over mesh axis 'model' (x4), the lowering splits it over mesh axis 'data' (x2)"
        in problem
    )
    assert (
        "dim 1 should be over mesh axis 'data' (x2), the lowering splits it over mesh axis 'model' (x4)"
        in problem
    )


def test_output_sharded_on_the_wrong_axis_multi_host() -> None:
    case = attention_projection_case(1, 16)
    wrong = dataclasses.replace(case, outputs=(ArraySpec("q", ("data", None)), case.outputs[1]))
    report = validate(wrong, hosts=4)
    assert not report.ok
    (problem,) = report.problems  # every host reports it, so it is not prefixed with host ids
    assert "output 'q' is mis-sharded" in problem
    assert "dim 1 should be replicated, the lowering splits it over mesh axis 'model' (x16)" in problem


DISAGREEMENT = "hosts disagree on the plan they loaded: "


def _disagreement(report: Report) -> str:
    """The one plan verdict of a report, unprefixed: every host's digest was compared."""
    (problem,) = [p for p in report.problems if p.startswith(DISAGREEMENT)]
    return problem


def test_hosts_disagreeing_on_the_plan() -> None:
    """Three 4-host runs at once (12 JAX processes on a shared machine: the load under which a host's
    collective used to time out and the verdict went missing), each must name the stale host."""
    case = attention_projection_case(1, 16)
    stale = dataclasses.replace(case, seed=7)  # host 2 loaded another bundle
    with ThreadPoolExecutor(3) as pool:
        reports = list(pool.map(lambda _: validate(case, hosts=4, host_cases={2: stale}), range(3)))
    for report in reports:
        assert not report.ok
        problem = _disagreement(report)
        assert f"hosts [0, 1, 3] read plan {plan_digest(case)}" in problem, report.problems
        assert f"hosts [2] read plan {plan_digest(stale)}" in problem, report.problems
        assert report.problems[0] == problem  # the verdict on the plans comes first


def test_the_plan_verdict_does_not_wait_for_the_collectives(monkeypatch: pytest.MonkeyPatch) -> None:
    """The coordinator's port is held by a socket that never answers: no host can join the
    collectives, so no host's own check runs. The hosts' digests, reported before JAX starts, still
    give the verdict."""
    case = attention_projection_case(1, 16)
    stale = dataclasses.replace(case, seed=7)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(8)
        monkeypatch.setattr(launcher, "_free_port", lambda: held.getsockname()[1])
        report = launcher.validate(case, hosts=4, host_cases={2: stale}, timeout=15)
    assert not report.ok
    assert "hosts [0, 1, 3] read plan" in _disagreement(report) and "hosts [2] read plan" in _disagreement(
        report
    )
    assert any("validation process" in p for p in report.problems), report.problems  # and why no more


def test_devices_must_split_evenly_over_hosts() -> None:
    report = validate(attention_projection_case(1, 4), hosts=3)
    assert report.problems == ("4 devices cannot be split evenly over 3 hosts",)


def test_case_json_round_trip_keeps_the_fingerprint() -> None:
    case = attention_projection_case(2, 4)
    again = MeshCase.from_json(case.to_json())
    assert again == case and again.fingerprint() == case.fingerprint()
    assert dataclasses.replace(case, seed=1).fingerprint() != case.fingerprint()


def test_command_line_exits_1_naming_the_array_and_axis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = attention_projection_case(1, 4)
    bad = dataclasses.replace(case, outputs=(ArraySpec("out", ("data", "tensor")),))
    path = tmp_path / "case.json"
    path.write_text(json.dumps(bad.to_json()))
    assert main(["--chips", "4", "--case", str(path)]) == 1
    out = capsys.readouterr().out
    assert "MIS-SHARDED" in out and "output 'out'" in out and "'tensor'" in out
