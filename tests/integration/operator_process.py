"""The operator as a real process (`datajax-operator run`), for tests that kill it or run two of it.

The in-process operator of ``kubehelpers.Operators`` cannot be killed with SIGKILL or peered with a
second copy; this one can. Its output goes to a log file the test reads (tracebacks, secrets).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from datajax_devtools.localcluster import die_with_parent, free_port

OPERATOR = Path(sys.executable).with_name("datajax-operator")


class OperatorProcess:
    """One `datajax-operator run` against the test cluster, liveness and metrics on loopback."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *extra: str,
        resync_seconds: float = 5.0,
        observe_interval: str | None = "5s",
        instance: str = "operator",
        command: Sequence[str] = (str(OPERATOR),),
    ) -> None:
        """``command`` runs the operator CLI (the installed `datajax-operator` unless a test brings
        its own entry point); ``run`` and the options follow. ``observe_interval`` is the periodic pass
        of each model (None: the config's, e.g. one given with ``--config``)."""
        self.log_path = log_path
        self.liveness_port = free_port()
        self.metrics_port = free_port()
        self.instance = instance
        argv = [
            *command,
            "run",
            "--kubeconfig",
            str(kubeconfig),
            "--log-format",
            "text",
            "--liveness-port",
            str(self.liveness_port),
            "--metrics-port",
            str(self.metrics_port),
            "--resync-seconds",
            str(resync_seconds),
            *(["--observe-interval", observe_interval] if observe_interval is not None else []),
            *extra,
        ]
        env = dict(os.environ, HOSTNAME=instance, POD_NAME=instance, PYTHONUNBUFFERED="1")
        self._log: IO[bytes] = log_path.open("ab")
        self.popen = subprocess.Popen(
            argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=die_with_parent,  # noqa: PLW1509 (only prctl): never outlives the test session
        )

    def _get(self, port: int, path: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return str(response.read().decode())
        except (OSError, urllib.error.URLError):
            return None

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Seconds until /healthz answers (kopf serves it once its startup handlers ran)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.popen.poll() is not None:
                raise AssertionError(f"operator exited with {self.popen.returncode}:\n{self.logs()[-3000:]}")
            if self._get(self.liveness_port, "/healthz") is not None:
                return time.monotonic() - t0
            time.sleep(0.2)
        raise AssertionError(f"operator not live within {timeout:.0f} s:\n{self.logs()[-3000:]}")

    def metrics_text(self) -> str:
        """The whole /metrics exposition ('' when the process does not answer)."""
        return self._get(self.metrics_port, "/metrics") or ""

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the operator's /metrics (0 when absent or the process does not answer)."""
        text = self.metrics_text()
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        for line in text.splitlines():
            if line.split(" ")[0] == wanted:
                return float(line.split(" ")[1])
        return 0.0

    def reconciles(self) -> float:
        """Every reconcile this process ran, whatever its result."""
        return sum(
            self.metric("datajax_operator_reconciles_total", result=r)
            for r in ("changed", "unchanged", "waiting", "gone", "error")
        )

    def passes(self, namespace: str, model: str) -> float:
        """Passes this process completed for one model (its pass counter)."""
        return self.metric("datajax_operator_model_passes_total", model=model, namespace=namespace)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no peering goodbye, whatever request was in flight is cut."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)
        self._log.close()

    def stop(self) -> None:
        """SIGTERM, as Kubernetes stops a pod; SIGKILL if it does not exit in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(30)
        if not self._log.closed:
            self._log.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
