"""`datajax-operator run` for the demo, with the demo's map of EndpointSlice addresses to loopback.

The API server refuses loopback addresses in an EndpointSlice, so the demo's slices list stand-in pod
IPs (192.0.2.x) and the operator must connect to 127.0.0.x instead. That map is deliberately not a
flag of `datajax-operator run` (a cluster never needs it); this module takes it as ``--dial A=B``
before the usual `run` arguments, parses those with the real command-line parser, and runs the same
runner the CLI runs.

    python -m datajax_operator.demo.operator_process --dial 192.0.2.11=127.0.0.11 run --kubeconfig K ...
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from datajax_operator import runner
from datajax_operator.cli import build_parser


def options(args: argparse.Namespace) -> runner.Options:
    """The Options `datajax-operator run` builds from the same arguments."""
    return runner.Options(
        namespaces=tuple(args.namespace),
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
        config_path=Path(args.config) if args.config else None,
        log_format=args.log_format,
        liveness_port=args.liveness_port,
        metrics_port=args.metrics_port,
        peering=args.peering,
        resync_seconds=args.resync_seconds,
        bind_address=args.bind_address,
    )


def main(argv: Sequence[str] | None = None) -> int:
    front = argparse.ArgumentParser(
        prog="python -m datajax_operator.demo.operator_process", description=__doc__
    )
    front.add_argument("--dial", action="append", default=[], metavar="ADDRESS=LOOPBACK")
    front.add_argument("rest", nargs=argparse.REMAINDER, help="run ... (the datajax-operator arguments)")
    ours = front.parse_args(argv)
    args = build_parser().parse_args(ours.rest)
    if args.command != "run":
        front.error("only `run` is supported")
    dial = dict(item.split("=", 1) for item in ours.dial)
    opts = options(args)
    if "sidecar_dial" in {f.name for f in dataclasses.fields(runner.Options)}:
        opts = dataclasses.replace(opts, sidecar_dial=dial)  # type: ignore[call-arg,unused-ignore]
    runner.run(opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
