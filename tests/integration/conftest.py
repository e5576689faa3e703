"""Integration fixtures: namespaces on the session's real API server, and the operator run in-process.

The operator runs the same code path as `datajax-operator run` (runner.run) in a thread, against the
session kubeconfig, with liveness and metrics on free loopback ports. One operator runs at a time
(they would all watch every namespace); a test that restarts it stops the previous one first.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import RunningOperator

from datajax_operator import runner
from datajax_operator.localcluster import free_port


class Operators:
    """The one operator of the session: started on demand, restartable, stopped at the end."""

    def __init__(self) -> None:
        self.current: RunningOperator | None = None

    def ensure(self) -> RunningOperator:
        if self.current is None or not self.current.thread.is_alive():
            self.current = self._start()
        return self.current

    def restart(self) -> RunningOperator:
        self.stop()
        self.current = self._start()
        return self.current

    def stop(self) -> None:
        if self.current is not None and self.current.thread.is_alive():
            self.current.stop()
        self.current = None

    def _start(self) -> RunningOperator:
        options = runner.Options(
            log_format=None,
            liveness_port=free_port(),
            metrics_port=free_port(),
            bind_address="127.0.0.1",
            resync_seconds=5.0,
        )
        ready, stop_flag = threading.Event(), threading.Event()
        thread = threading.Thread(
            target=runner.run,
            args=(options,),
            kwargs={"stop_flag": stop_flag, "ready_flag": ready},
            name="datajax-operator",
            daemon=True,
        )
        thread.start()
        assert ready.wait(60), "operator not ready within 60 s"
        return RunningOperator(options=options, thread=thread, stop_flag=stop_flag)


@pytest.fixture(scope="session")
def operators(kubeconfig: Path) -> Iterator[Operators]:
    pool = Operators()
    yield pool
    pool.stop()


@pytest.fixture
def operator(operators: Operators) -> RunningOperator:
    """The running operator (started if none runs)."""
    return operators.ensure()


@pytest.fixture
def namespace(admin_client: Any) -> str:
    """A fresh namespace per test (never deleted: no controller here would ever finish the deletion)."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(admin_client).create_namespace({"metadata": {"name": name}})
    return name
