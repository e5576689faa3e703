"""`datajax-operator run` with a map of EndpointSlice addresses to the loopback addresses dialled.

Pod IPs (10.A.B.N from kwok) are served on loopback (127.A.B.N, ``LocalCluster.dial_map``), so the
operator must connect to those instead. That map is deliberately not a flag of `datajax-operator run`
(a cluster never needs it); this module takes it as ``--dial A=B`` before the usual `run` arguments,
parses those with the real command-line parser, and runs the same runner the CLI runs
(`runner.Options.sidecar_dial`, the hook the e2e tests use in-process). The demo and the e2e tier's
operator processes (tests/e2e/test_ha_scale_down.py) start the operator through it.

    python -m datajax_devtools.demo.operator_process --dial 10.77.3.1=127.77.3.1 run --kubeconfig K ...
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from datajax_operator import runner
from datajax_operator.cli import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    front = argparse.ArgumentParser(
        prog="python -m datajax_devtools.demo.operator_process", description=__doc__
    )
    front.add_argument("--dial", action="append", default=[], metavar="ADDRESS=LOOPBACK")
    front.add_argument("rest", nargs=argparse.REMAINDER, help="run ... (the datajax-operator arguments)")
    ours = front.parse_args(argv)
    args = build_parser().parse_args(ours.rest)
    if args.command != "run":
        front.error("only `run` is supported")
    dial = dict(item.split("=", 1) for item in ours.dial)
    runner.run(dataclasses.replace(runner.options_from_args(args), sidecar_dial=dial))
    return 0


if __name__ == "__main__":
    sys.exit(main())
