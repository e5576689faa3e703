"""Helpers of the integration tests: polling, examples, the in-process operator handle."""

from __future__ import annotations

import contextlib
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tests.polling import wait_for

__all__ = [  # wait_for is the tests' one poll loop (tests/polling.py), imported from here by the tier
    "EXAMPLES", "GROUP", "PLURAL", "REPO", "VERSION", "Operators", "RunningOperator", "load_example",
    "wait_for",
]  # fmt: skip

from datajax_devtools.localcluster import free_port
from datajax_operator import runner

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
GROUP, VERSION, PLURAL = "datajax.dev", "v1alpha1", "datajaxmodels"


@dataclass
class RunningOperator:
    options: runner.Options
    thread: threading.Thread
    stop_flag: threading.Event

    def get(self, port: int, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status), response.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on the operator's /metrics (0 when absent)."""
        assert self.options.metrics_port is not None
        _, text = self.get(self.options.metrics_port, "/metrics")
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        for line in text.splitlines():
            if line.split(" ")[0] == wanted:
                return float(line.split(" ")[1])
        return 0.0

    def passes(self, namespace: str, model: str) -> float:
        """Passes the operator completed for one model (its pass counter)."""
        return self.metric("datajax_operator_model_passes_total", model=model, namespace=namespace)

    def stop(self) -> None:
        self.stop_flag.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "operator did not stop within 60 s"


def load_example(path: Path, namespace: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    doc["metadata"]["namespace"] = namespace
    return doc


class Operators:
    """The one operator of the session: started on demand, restartable, stopped at the end.

    Shared by the integration and e2e tiers (``Operators.shared``): two operators watching every
    namespace would fight over the same models. A tier that needs other options (the e2e tier's
    short observe interval) passes them as overrides; the operator restarts when they differ.
    """

    _shared: Operators | None = None

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.current: RunningOperator | None = None
        self.overrides: dict[str, Any] = {}
        self.base: dict[str, Any] = {}
        """Options of every start: the session cluster's dial map (pod IP -> loopback), so a scrape of
        a pod with no local listener is refused at once rather than waiting on an unrouted address."""

    @classmethod
    def shared(cls, kubeconfig: Path) -> Operators:
        if cls._shared is None or cls._shared.kubeconfig != kubeconfig:
            cls._shared = cls(kubeconfig)
        return cls._shared

    def ensure(self, **overrides: Any) -> RunningOperator:
        if self.current is None or not self.current.thread.is_alive() or overrides != self.overrides:
            self.stop()
            self.current = self._start(overrides)
        return self.current

    def restart(self, **overrides: Any) -> RunningOperator:
        self.stop()
        self.current = self._start(overrides)
        return self.current

    def stop(self) -> None:
        if self.current is not None and self.current.thread.is_alive():
            self.current.stop()
        self.current = None

    def _start(self, overrides: dict[str, Any]) -> RunningOperator:
        self.overrides = dict(overrides)
        # the periodic pass of each model every 5 s (30 s in production), unless a config file sets it
        settings: dict[str, Any] = {
            "resync_seconds": 5.0,
            **({} if "config_path" in overrides else {"observe_interval": "5s"}),
            **self.base,
            **overrides,
        }
        options = runner.Options(
            kubeconfig=self.kubeconfig,
            log_format=None,
            liveness_port=free_port(),
            metrics_port=free_port(),
            bind_address="127.0.0.1",
            **settings,
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


@contextlib.contextmanager
def cordoned(api_client: Any, pool: str) -> Iterator[Callable[[], None]]:
    """The node pool's nodes marked unschedulable, as `kubectl cordon` does, so a model's pods stay
    Pending until the test calls the yielded ``uncordon`` (or leaves the block): how a test holds a
    workload back, now that the scheduler, the controllers and kwok bring it up within seconds."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    names = [
        n.metadata.name for n in core.list_node(label_selector=f"cloud.google.com/gke-nodepool={pool}").items
    ]
    assert names, f"no node in pool {pool}"

    def mark(unschedulable: bool) -> None:
        for name in names:
            core.patch_node(name, {"spec": {"unschedulable": unschedulable}})

    mark(True)
    try:
        yield lambda: mark(False)
    finally:
        mark(False)
