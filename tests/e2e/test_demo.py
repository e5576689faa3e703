"""`make run`'s demo in short mode, as a user runs it: the story it prints, exit 0, nothing left running.

Both tests start the demo as its own process group, the way a terminal runs `make run`, and the
interrupt test sends SIGINT to the whole group, as Ctrl-C does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def start(workdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "datajax_devtools.demo", "--short", "--workdir", str(workdir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )


def leftovers(workdir: Path, output: str) -> list[str]:
    """Processes still alive that the demo started: by the pids it printed, or by its work directory
    on their command line (etcd, kube-apiserver, the operator, the sidecars' mounted files)."""
    pids = {int(p) for p in re.findall(r"\bpid (\d+)", output)}
    alive = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().split()[2]
        except OSError:
            continue
        if state != "Z" and (int(proc.name) in pids or str(workdir) in cmdline):
            alive.append(f"{proc.name}: {cmdline[:200]}")
    return alive


def test_demo_breaches_and_recovers(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    started = time.monotonic()
    demo = start(workdir)
    try:
        output, _ = demo.communicate(timeout=420)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    seconds = time.monotonic() - started
    print(output)
    print(f"demo --short took {seconds:.0f} s")
    assert demo.returncode == 0, output[-3000:]
    for step in range(1, 9):
        assert f"[{step}/8]" in output
    # the story, in order: figures under the ceiling, the breach with its action, the recovery
    filled = re.search(r"llama3-8b\s+v6e\s+2x4\s+2\s+True\s+\d+\.\d+\s+\d+(\.\d+)?\s+0\.\d+", output)
    assert filled, "kubectl get djm never showed $/Mtok, P95 and PrefixHit"
    breach = output.index("CostCeilingBreached=True reason=")
    scale_down = output.index("ScaleDown: Deployment llama3-8b 2 -> 1 replicas")
    recovered = output.index("CostCeilingBreached=False reason=")
    assert filled.start() < breach < scale_down < recovered
    reason = re.search(r"CostCeilingBreached=True reason=(\w+)", output)
    assert reason and f"event: Warning {reason.group(1)} DataJaxModel/llama3-8b" in output, (
        "no Event for the breach"
    )
    summary = output[output.index("\nSummary") :]
    assert re.search(
        r"quiet .*CostCeilingBreached=True \d+ s after the drop; ScaleDown 2 -> 1 slices", summary
    )
    assert re.search(r"return .*CostCeilingBreached=False \d+ s after traffic returned", summary)
    assert "stopped: no process of the demo is left running" in output
    assert leftovers(workdir, output) == []


def test_ctrl_c_stops_everything(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    demo = start(workdir)
    assert demo.stdout is not None
    output = ""
    try:
        deadline = time.monotonic() + 180
        for line in demo.stdout:  # until the sidecars run: every kind of process is up
            output += line
            if "datajax-sidecar pid" in line or time.monotonic() > deadline:
                break
        assert "datajax-sidecar pid" in output, output
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        rest, _ = demo.communicate(timeout=60)
        output += rest
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 130, output[-2000:]
    assert "interrupted: stopping everything the demo started" in output
    assert leftovers(workdir, output) == []
