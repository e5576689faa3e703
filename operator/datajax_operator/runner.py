"""`datajax-operator run`: the operator process (kopf), its liveness and metrics endpoints, its logs.

Standalone by default (no peering objects needed: one replica, Recreate rollout in the chart); with
``--peering NAME`` kopf's peering CRDs coordinate several replicas. kopf peering is not an election:
replicas of equal priority pause each other, so each replica needs a ``--priority`` of its own
(``--priority pod-name`` derives one from the pod's name, as the chart does); the highest live one
acts, and a standby takes over once the active one's record is older than ``--peering-lifetime``.
kopf's own bookkeeping goes to annotations under our group, never into the model's status, which only
the reconcile writes.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import kopf

from datajax_operator.api.constants import GROUP
from datajax_operator.handlers import Context, register
from datajax_operator.kube import Kube
from datajax_operator.metrics import OperatorMetrics
from datajax_operator.peering import Peering, priority_from_name
from datajax_operator.plan.config import OperatorConfig, load_config

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
    priority: int = 0
    """kopf peering priority: the highest live one acts, the others stand by."""
    peering_lifetime: int = 60
    """Seconds a replica's peering record stays valid: how long a standby waits for a dead replica."""
    resync_seconds: float = 60.0
    workers: int = 16
    """Reconciles that may run at once (threads, and API connections kept open). Each pass waits on
    about a dozen sequential API requests, so with the default executor (~cores + 4 threads) a burst
    of new models queued while the operator and the API server sat mostly idle (make bench)."""
    bind_address: str = "0.0.0.0"
    """Where liveness and metrics listen: every interface in a pod (the kubelet and Prometheus call
    in), loopback in tests."""
    observe_interval: str | None = None
    """How often each model's sidecars are read back (e.g. 30s); None keeps the config's."""
    sidecar_dial: Mapping[str, str] = field(default_factory=dict)
    """Not a flag: for an operator embedded in a test, sidecar address -> address to connect to (the API
    server refuses loopback addresses in EndpointSlices)."""


def settings(options: Options) -> kopf.OperatorSettings:
    result = kopf.OperatorSettings()
    result.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    result.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    result.peering.priority = options.priority
    result.peering.lifetime = options.peering_lifetime
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
    if options.observe_interval is not None:
        config = OperatorConfig.model_validate(
            {**config.model_dump(by_alias=True), "observeInterval": options.observe_interval}
        )
    kube = Kube.connect(str(options.kubeconfig) if options.kubeconfig else None, connections=options.workers)
    executor = ThreadPoolExecutor(options.workers, thread_name_prefix="reconcile")
    metrics = OperatorMetrics()
    server = (
        metrics.serve(options.metrics_port, options.bind_address)
        if options.metrics_port is not None
        else None
    )
    identity = f"{os.environ.get('POD_NAME') or socket.gethostname()}/{secrets.token_hex(4)}"
    registry = kopf.OperatorRegistry()
    register(
        registry,
        Context(
            kube=kube,
            config=config,
            metrics=metrics,
            resync_seconds=options.resync_seconds,
            dial=dict(options.sidecar_dial),
            peering=(
                Peering(options.peering, identity, options.priority, options.namespaces)
                if options.peering is not None
                else None
            ),
            executor=executor,
        ),
    )
    try:
        kopf.run(
            registry=registry,
            settings=settings(options),
            standalone=options.peering is None,
            peering_name=options.peering,
            identity=cast(Any, identity),  # kopf.Identity: a NewType of str kopf does not export
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
    parser.add_argument("--bind-address", default="0.0.0.0", help="address of /healthz and /metrics")
    parser.add_argument("--peering", metavar="NAME", help="coordinate replicas through kopf peering NAME")
    parser.add_argument(
        "--priority",
        type=_priority,
        default=0,
        help="peering priority: the highest live replica acts. 'pod-name': one of its own, derived from "
        "$POD_NAME (else the host name), so that the replicas of one Deployment differ",
    )
    parser.add_argument(
        "--peering-lifetime",
        type=int,
        default=60,
        metavar="SECONDS",
        help="how long a replica's peering record lasts (a standby takes over after it expires)",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=60.0,
        help="re-read a child no watch reports (the settings ConfigMap) after this long",
    )
    parser.add_argument(
        "--observe-interval",
        type=_interval,
        metavar="DURATION",
        help="read every model's sidecars back into its status this often, e.g. 30s (default: the "
        "config's observeInterval, 30s)",
    )
    parser.add_argument("--workers", type=int, default=16, help="reconciles that may run at once (threads)")
    parser.set_defaults(func=_cmd_run)


def _priority(text: str) -> int:
    if text == "pod-name":
        return priority_from_name(os.environ.get("POD_NAME") or socket.gethostname())
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a priority: {text!r} (an integer, or pod-name)") from None


def _interval(text: str) -> str:
    if re.fullmatch(r"[1-9][0-9]{0,4}(s|m)", text) is None:
        raise argparse.ArgumentTypeError(f"not an interval: {text!r} (a number and s or m, e.g. 30s)")
    return text


def options_from_args(args: argparse.Namespace) -> Options:
    """The Options of a parsed `run` command line (also used by the local demo's operator process)."""
    return Options(
        namespaces=tuple(args.namespace),
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
        config_path=Path(args.config) if args.config else None,
        log_format=args.log_format,
        liveness_port=args.liveness_port,
        metrics_port=args.metrics_port,
        peering=args.peering,
        priority=args.priority,
        peering_lifetime=args.peering_lifetime,
        resync_seconds=args.resync_seconds,
        bind_address=args.bind_address,
        observe_interval=args.observe_interval,
        workers=args.workers,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    run(options_from_args(args))
    return 0
