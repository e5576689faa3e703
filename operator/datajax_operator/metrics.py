"""The operator's own Prometheus metrics (HELPERS contract names), on ``--metrics-port``.

Each operator instance has its own registry, so tests can run several in one process and read
exactly one instance's figures.
"""

from __future__ import annotations

import contextlib
import threading
from typing import get_args
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from datajax_operator.api.constants import COST_CEILING_BREACHED
from datajax_operator.api.status import DataJaxModelStatus, Phase

ModelKey = tuple[str, str]


class OperatorMetrics:
    """Reconcile counts and durations, and how many models are in each phase."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "datajax_operator_reconciles",
            "Reconcile passes by result: changed (status written), unchanged, waiting (an API the plan "
            "needs is missing), gone (model deleted), error.",
            ["result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "datajax_operator_reconcile_errors", "Reconcile passes that raised.", registry=self.registry
        )
        self.duration = Histogram(
            "datajax_operator_reconcile_duration_seconds",
            "Wall time of one reconcile pass, API calls included.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.models = Gauge(
            "datajax_operator_models",
            "Models this operator reconciles, by phase.",
            ["phase"],
            registry=self.registry,
        )
        self.cost_breached = Gauge(
            "datajax_operator_models_cost_breached",
            "Models whose CostCeilingBreached condition is True.",
            registry=self.registry,
        )
        self.passes = Counter(
            "datajax_operator_model_passes",
            "Completed reconcile passes per model (every trigger: change, child event, periodic "
            "observation): what a pass would do, it has done once this moved.",
            ["namespace", "model"],
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._phases: dict[ModelKey, str] = {}
        self._breached: set[ModelKey] = set()
        for phase in get_args(Phase):
            self.models.labels(phase=phase).set(0)

    def record(self, key: ModelKey, status: DataJaxModelStatus) -> None:
        """Count a model's completed pass; remember its latest phase and cost verdict."""
        self.passes.labels(namespace=key[0], model=key[1]).inc()
        breached = any(c.type == COST_CEILING_BREACHED and c.status == "True" for c in status.conditions)
        with self._lock:
            if status.phase is not None:
                self._phases[key] = status.phase
            if breached:
                self._breached.add(key)
            else:
                self._breached.discard(key)
            self._publish()

    def forget(self, key: ModelKey) -> None:
        with self._lock:
            with contextlib.suppress(KeyError):  # a model that never completed a pass has no series
                self.passes.remove(*key)
            self._phases.pop(key, None)
            self._breached.discard(key)
            self._publish()

    def _publish(self) -> None:
        for phase in get_args(Phase):
            self.models.labels(phase=phase).set(sum(1 for p in self._phases.values() if p == phase))
        self.cost_breached.set(len(self._breached))

    def serve(self, port: int, address: str = "0.0.0.0") -> WSGIServer:
        """Serve /metrics in a background thread; ``shutdown()`` the returned server to stop."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server
