"""`datajax-operator run`: the operator process (kopf), its liveness and metrics endpoints, its logs.

Standalone by default (no peering objects needed: one replica, Recreate rollout in the chart); with
``--peering NAME`` kopf's peering CRDs coordinate several replicas. kopf's own bookkeeping goes to
annotations under our group, never into the model's status, which only the reconcile writes.
"""

from __future__ import annotations

import argparse
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import kopf

from datajax_operator.api.constants import GROUP
from datajax_operator.handlers import Context, register
from datajax_operator.kube import Kube
from datajax_operator.metrics import OperatorMetrics
from datajax_operator.plan.config import load_config

LogFormat = Literal["json", "text"]


@dataclass(frozen=True)
class Options:
    """Everything `run` takes from the command line (tests build one directly)."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all namespaces."""
    kubeconfig: Path | None = None
    """None: in-cluster credentials in a pod, else $KUBECONFIG."""
    config_path: Path | None = None
    log_format: LogFormat | None = "text"
    """None leaves logging as the caller configured it (an in-process test)."""
    liveness_port: int | None = 8080
    metrics_port: int | None = 9090
    peering: str | None = None
    resync_seconds: float = 60.0
    workers: int = 16
    """Reconciles that may run at once (threads, and API connections kept open). Each pass waits on
    about a dozen sequential API requests, so with the default executor (~cores + 4 threads) a burst
    of new models queued while the operator and the API server sat mostly idle (make bench)."""
    bind_address: str = "0.0.0.0"
    """Where liveness and metrics listen: every interface in a pod (the kubelet and Prometheus call
    in), loopback in tests."""


def settings(options: Options) -> kopf.OperatorSettings:
    result = kopf.OperatorSettings()
    result.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    result.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Events of our own mark condition transitions; kopf's "handler succeeded" ones would drown them.
    result.posting.level = logging.WARNING
    return result


def run(
    options: Options,
    *,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    """Run the operator until SIGINT/SIGTERM or ``stop_flag`` is set."""
    if options.log_format is not None:
        kopf.configure(
            log_format=kopf.LogFormat.JSON if options.log_format == "json" else kopf.LogFormat.FULL
        )
    config = load_config(options.config_path)
    kube = Kube.connect(str(options.kubeconfig) if options.kubeconfig else None, connections=options.workers)
    executor = ThreadPoolExecutor(options.workers, thread_name_prefix="reconcile")
    metrics = OperatorMetrics()
    server = (
        metrics.serve(options.metrics_port, options.bind_address)
        if options.metrics_port is not None
        else None
    )
    registry = kopf.OperatorRegistry()
    register(
        registry,
        Context(
            kube=kube,
            config=config,
            metrics=metrics,
            resync_seconds=options.resync_seconds,
            executor=executor,
        ),
    )
    try:
        kopf.run(
            registry=registry,
            settings=settings(options),
            standalone=options.peering is None,
            peering_name=options.peering,
            clusterwide=not options.namespaces,
            namespaces=options.namespaces,
            liveness_endpoint=(
                f"http://{options.bind_address}:{options.liveness_port}/healthz"
                if options.liveness_port is not None
                else None
            ),
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        executor.shutdown(wait=False, cancel_futures=True)
        kube.close()


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `run` subcommand of the `datajax-operator` CLI."""
    parser = subparsers.add_parser("run", help="run the operator (kopf) against the current cluster")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    parser.add_argument(
        "--kubeconfig", metavar="FILE", help="default: in-cluster credentials, else $KUBECONFIG"
    )
    parser.add_argument("--config", metavar="FILE", help="operator config (YAML/JSON): images, price table")
    parser.add_argument("--log-format", choices=("json", "text"), default="text")
    parser.add_argument("--liveness-port", type=int, default=8080, help="serves /healthz")
    parser.add_argument("--metrics-port", type=int, default=9090, help="serves /metrics")
    parser.add_argument("--peering", metavar="NAME", help="coordinate replicas through kopf peering NAME")
    parser.add_argument(
        "--resync-seconds", type=float, default=60.0, help="re-observe every model this often"
    )
    parser.add_argument("--workers", type=int, default=16, help="reconciles that may run at once (threads)")
    parser.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    run(
        Options(
            namespaces=tuple(args.namespace),
            kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
            config_path=Path(args.config) if args.config else None,
            log_format=args.log_format,
            liveness_port=args.liveness_port,
            metrics_port=args.metrics_port,
            peering=args.peering,
            resync_seconds=args.resync_seconds,
            workers=args.workers,
        )
    )
    return 0
