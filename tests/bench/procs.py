"""Processes the benchmark starts and measures through /proc: operators, the API server, etcd, py-spy.

CPU is utime + stime from ``/proc/PID/stat`` (what the kernel charged the process, whoever else shares
the cores); memory is ``VmRSS`` from ``/proc/PID/status``. Each operator under test is a separate
process (``datajax-operator run`` as users run it), so its figures are its own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import aiohttp

from datajax_devtools.localcluster import stop_process

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14, 15 of proc(5)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def child_pids(names: tuple[str, ...]) -> dict[str, int]:
    """Our own child processes with these command names (the LocalCluster's etcd and kube-apiserver)."""
    found: dict[str, int] = {}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == me and comm in names:
            found[comm] = int(entry.name)
    return found


def machine() -> dict[str, object]:
    """Cores, memory, CPU model and load of the machine, from /proc."""
    meminfo = {
        line.split(":")[0]: int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
    }
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(meminfo["MemTotal"] / 2**20, 1),
        "load_average": os.getloadavg(),
        "python": sys.version.split()[0],
    }


class Process:
    """A process the benchmark started, with its log; stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.popen = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.log_path.stem} exited with {self.popen.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        stop_process(self.popen, timeout, sig)
        self._log.close()
        return int(self.popen.returncode)


async def wait_healthy(process: Process, port: int, timeout: float = 60.0) -> None:
    """Until kopf's liveness endpoint answers 200 (the operator has started its watches)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if not process.alive():
                raise RuntimeError(f"operator exited:\n{process.tail()}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"operator not healthy within {timeout:.0f} s:\n{process.tail()}")
            await asyncio.sleep(0.2)


def py_spy() -> str | None:
    """The py-spy binary beside this interpreter or on PATH (a dev dependency), if any."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy sampling one process until stopped; writes collapsed stacks (``--format raw``)."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("py-spy not found (pip install py-spy)")
        self.out = out
        self.process = Process(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nolineno",
                "--nonblocking",
                "--gil",  # only the thread holding the GIL: where the CPU goes, not who waits on I/O
                "--output",
                str(out),
            ],
            out.with_suffix(".log"),
        )

    def stop(self) -> Path:
        self.process.stop(signal.SIGINT, timeout=60)
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote no profile:\n{self.process.tail()}")
        return self.out
