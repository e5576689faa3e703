"""Start the validation's JAX processes on 127.0.0.1 and merge their verdicts into one report.

JAX fixes its device count when it initialises, so the check never runs in the caller's process: one
child per host, each with ``--xla_force_host_platform_device_count = chips / hosts``, joined through a
coordinator on a free loopback port. A child that crashes would leave the others waiting in a collective,
so once one dies the rest get a short grace and are killed; the report says which host failed and why.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from datajax_runtime.spmd.case import PLAN_DISAGREEMENT, MeshCase, plan_disagreement, static_problems

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
CRASH_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class Report:
    """The merged verdict: ``problems`` are de-duplicated, prefixed with the hosts when not all agree."""

    ok: bool
    problems: tuple[str, ...]
    hosts: int
    devices: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "hosts": self.hosts,
            "devices": self.devices,
            "seconds": round(self.seconds, 3),
        }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _child_env(devices_per_host: int) -> dict[str, str]:
    env = dict(os.environ)
    kept = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT_FLAG)]
    # One Eigen thread per process: the machine's cores are shared, and the arrays are tiny.
    env["XLA_FLAGS"] = " ".join(
        [*kept, f"{DEVICE_COUNT_FLAG}={devices_per_host}", "--xla_cpu_multi_thread_eigen=false"]
    )
    env["JAX_PLATFORMS"] = "cpu"
    return env


def validate(
    case: MeshCase,
    hosts: int = 1,
    *,
    host_cases: Mapping[int, MeshCase] | None = None,
    timeout: float = 180.0,
) -> Report:
    """Validate ``case`` on ``hosts`` processes; ``host_cases`` gives a host a different plan (as a host
    reading a stale bundle would) - the cross-host check must catch it."""

    start = time.monotonic()
    problems = static_problems(case)
    if hosts < 1 or case.devices % hosts:
        problems.append(f"{case.devices} devices cannot be split evenly over {hosts} hosts")
    if problems:
        return Report(False, tuple(problems), hosts, case.devices, time.monotonic() - start)

    env = _child_env(case.devices // hosts)
    coordinator = f"127.0.0.1:{_free_port()}" if hosts > 1 else ""
    with tempfile.TemporaryDirectory(prefix="datajax-validate-mesh-") as tmp:
        procs: list[subprocess.Popen[str]] = []
        for host in range(hosts):
            path = Path(tmp) / f"case-{host}.json"
            path.write_text(json.dumps((host_cases or {}).get(host, case).to_json()))
            cmd = [sys.executable, "-m", "datajax_runtime.spmd.worker", "--case", str(path)]
            cmd += ["--process-id", str(host), "--num-processes", str(hosts), "--coordinator", coordinator]
            procs.append(
                subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        outputs = _wait(procs, start + timeout)
    merged = _merge(outputs)
    return Report(not merged, tuple(merged), hosts, case.devices, time.monotonic() - start)


def _wait(procs: list[subprocess.Popen[str]], deadline: float) -> list[tuple[int | None, str, str]]:
    """Wait for every child; after a crash (exit not 0/1) or the deadline, kill the stragglers."""

    kill_at = deadline
    while any(p.poll() is None for p in procs) and time.monotonic() < kill_at:
        if any(p.returncode not in (None, 0, 1) for p in procs):
            kill_at = min(kill_at, time.monotonic() + CRASH_GRACE_SECONDS)
        time.sleep(0.05)
    results: list[tuple[int | None, str, str]] = []
    for p in procs:
        timed_out = p.poll() is None
        if timed_out:
            p.kill()
        out, err = p.communicate()
        results.append((None if timed_out else p.returncode, out, err))
    return results


def _merge(outputs: list[tuple[int | None, str, str]]) -> list[str]:
    """The hosts' problems, de-duplicated. Whether they loaded the same plan is judged first, from the
    digest each host printed before joining any collective: that verdict never depends on how the
    collectives fared (under load a host can time out joining them, and then no host's own check
    says anything about the plans)."""
    digests: dict[int, str] = {}
    by_problem: dict[str, list[int]] = {}
    for host, (code, out, err) in enumerate(outputs):
        lines = out.strip().splitlines()
        digest = _digest(lines[0]) if lines else None
        if digest is not None:
            digests[host] = digest
        verdict = _verdict(lines[-1]) if lines else None
        if verdict is None:
            tail = err.strip().splitlines()[-1:] or ["no output"]
            what = "did not finish in time" if code is None else f"exited {code}"
            by_problem.setdefault(f"validation process {what}: {tail[0]}", []).append(host)
            continue
        for problem in verdict:
            by_problem.setdefault(problem, []).append(host)
    disagreement = plan_disagreement(digests)
    hosts = len(outputs)
    merged = [
        p if len(h) == hosts else f"host {h}: {p}"
        for p, h in by_problem.items()
        if disagreement is None or not p.startswith(PLAN_DISAGREEMENT)  # the workers' copy of it
    ]
    return [disagreement, *merged] if disagreement is not None else merged


def _digest(line: str) -> str | None:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    plan = data.get("plan") if isinstance(data, dict) else None
    return plan if isinstance(plan, str) else None


def _verdict(line: str) -> list[str] | None:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("problems"), list):
        return None
    return [str(p) for p in data["problems"]]
