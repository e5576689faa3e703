"""`datajax-operator status`: fetch a model (or the fleet) and its Events, print the screen, exit with a
verdict a script can use.

Fetching goes through ``kube`` and rendering through the pure ``status.screen``; this module only
wires them together, owns the exit codes and the ``--watch`` loop. Nothing in the operator imports
it (an import-linter contract holds that).

Exit codes: 0 every model shown is Ready and breaches nothing; 1 one is not Ready, or its cost ceiling
or latency SLO is breached; 2 the question could not be answered (no such model, no cluster, no
permission), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, NoReturn, TextIO

import urllib3
from kubernetes.config import ConfigException

from datajax_operator.kube import DATAJAX_MODEL, Kube, KubeError, default_namespace
from datajax_operator.status.screen import render_fleet, render_model
from datajax_operator.status.summary import ModelSummary, recent_events

EXIT_HEALTHY: Final = 0
EXIT_ATTENTION: Final = 1
EXIT_ERROR: Final = 2
EVENT_LIMIT: Final = 10
"""Events shown on the screen of one model, the most recent."""
_CLEAR: Final = "\x1b[H\x1b[2J"


class StatusError(Exception):
    """The question cannot be answered; the message says why, for a person."""


@dataclass(frozen=True)
class Options:
    """What `status` was asked (cli.py builds it from the command line)."""

    name: str | None
    """None: the fleet view (``--all``)."""
    namespace: str | None
    """None: the context's namespace; ignored when ``all_namespaces``."""
    all_namespaces: bool = False
    kubeconfig: str | None = None
    output: str = "text"
    watch: float | None = None
    """Seconds between redraws; None draws once."""


def _now() -> datetime:
    return datetime.now(UTC)


def _one(kube: Kube, namespace: str, name: str, options: Options, now: datetime) -> tuple[int, str]:
    raw = kube.get(DATAJAX_MODEL, namespace, name)
    if raw is None:
        raise StatusError(f'DataJaxModel "{name}" not found in namespace "{namespace}"')
    summary = ModelSummary.from_document(raw)
    events = recent_events(kube.events_about(raw), EVENT_LIMIT)
    code = EXIT_HEALTHY if summary.healthy else EXIT_ATTENTION
    if options.output == "json":
        return code, json.dumps(summary.to_json(now, events), indent=2) + "\n"
    return code, render_model(summary, events, now)


def _fleet(kube: Kube, namespace: str | None, options: Options, now: datetime) -> tuple[int, str]:
    items = kube.list_all(DATAJAX_MODEL, namespace)
    summaries = sorted(
        (ModelSummary.from_document(raw) for raw in items), key=lambda s: (s.namespace, s.name)
    )
    code = EXIT_HEALTHY if all(s.healthy for s in summaries) else EXIT_ATTENTION
    if options.output == "json":
        return code, json.dumps({"items": [s.to_json(now) for s in summaries]}, indent=2) + "\n"
    if not summaries:
        where = "any namespace" if namespace is None else f'namespace "{namespace}"'
        return code, f"No DataJaxModels in {where}.\n"
    return code, render_fleet(summaries, now, with_namespace=namespace is None)


def _describe(err: Exception) -> str:
    """One line for a person: what failed, not a traceback."""
    if isinstance(err, urllib3.exceptions.MaxRetryError):
        pool = err.pool
        why = str(err.reason).split("): ", 1)[-1]  # drop the connection object's repr
        return f"cannot reach the API server at {pool.scheme}://{pool.host}:{pool.port}: {why}"
    if isinstance(err, urllib3.exceptions.HTTPError):
        return f"cannot reach the API server: {err}"
    if isinstance(err, ConfigException):
        return f"no usable kubeconfig: {err}"
    return str(err)


_FAILURES: Final = (StatusError, KubeError, ConfigException, urllib3.exceptions.HTTPError, OSError)


def _answer(options: Options, kube: Kube, namespace: str | None) -> tuple[int, str]:
    now = _now()
    if options.name is None:
        return _fleet(kube, namespace, options, now)
    assert namespace is not None
    return _one(kube, namespace, options.name, options, now)


def run(options: Options, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Answer once, or redraw every ``options.watch`` seconds until interrupted (then the exit code is
    the last screen's; an error while watching is shown and the watch goes on). Output goes to
    stdout and errors to stderr unless streams are given."""
    out = out or sys.stdout
    err = err or sys.stderr
    # the client retries a refused connection; its per-retry warnings are noise in a terminal
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        if options.kubeconfig is not None and not Path(options.kubeconfig).is_file():
            raise StatusError(f"kubeconfig {options.kubeconfig} does not exist")
        namespace = (
            None if options.all_namespaces else options.namespace or default_namespace(options.kubeconfig)
        )
        kube = Kube.connect(options.kubeconfig)
    except _FAILURES as failure:
        print(f"error: {_describe(failure)}", file=err)
        return EXIT_ERROR
    try:
        if options.watch is None:
            try:
                code, text = _answer(options, kube, namespace)
            except _FAILURES as failure:
                print(f"error: {_describe(failure)}", file=err)
                return EXIT_ERROR
            out.write(text)
            return code
        return _watch(options, kube, namespace, out)
    finally:
        kube.close()


def _watch(options: Options, kube: Kube, namespace: str | None, out: TextIO) -> int:
    assert options.watch is not None
    code = EXIT_ERROR
    clear = out.isatty()
    try:
        while True:
            try:
                code, text = _answer(options, kube, namespace)
            except _FAILURES as failure:
                code, text = EXIT_ERROR, f"error: {_describe(failure)}\n"
            stamp = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
            # JSON stays a plain stream of documents, one per redraw, for jq
            header = (
                f"Every {options.watch:g}s: datajax-operator status   {stamp}\n\n"
                if options.output == "text"
                else ""
            )
            out.write((_CLEAR if clear else "") + header + text + ("" if clear else "\n"))
            out.flush()
            time.sleep(options.watch)
    except KeyboardInterrupt:
        return code


EPILOG: Final = """exit codes:
  0  every model shown is Ready and breaches neither its cost ceiling nor its latency SLO
  1  a model is not Ready, or CostCeilingBreached / LatencySLOBreached is True
  2  no answer: no such model, no cluster, no permission (the reason is on stderr)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `status` (cli.py registers the subcommand)."""
    parser.add_argument("name", nargs="?", metavar="NAME", help="the DataJaxModel to show")
    parser.add_argument(
        "--all", action="store_true", help="one line per model of the namespace (with -A: of every namespace)"
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace, else default")
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="with --all (implied): every namespace"
    )
    parser.add_argument(
        "--kubeconfig", metavar="FILE", help="default: in-cluster credentials, else $KUBECONFIG"
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.add_argument("--watch", type=float, metavar="SECONDS", help="redraw every SECONDS until Ctrl-C")


def options_from(args: argparse.Namespace, error: Callable[[str], NoReturn]) -> Options:
    """Options from parsed arguments; ``error`` (argparse's ``parser.error``) exits 2 on misuse."""
    fleet = args.all or args.all_namespaces
    if fleet and args.name:
        error("give a NAME or --all, not both")
    if not fleet and not args.name:
        error("give the NAME of a DataJaxModel, or --all for every model of the namespace")
    if args.watch is not None and args.watch <= 0:
        error("--watch takes a number of seconds greater than 0")
    return Options(
        name=None if fleet else args.name,
        namespace=args.namespace,
        all_namespaces=args.all_namespaces,
        kubeconfig=args.kubeconfig,
        output=args.output,
        watch=args.watch,
    )
