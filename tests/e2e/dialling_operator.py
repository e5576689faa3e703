"""`datajax-operator run ...` as a process of its own, dialling the e2e tier's loopback sidecars.

Pods' IPs are listed in EndpointSlices, and their sidecars listen on the loopback address the control
plane maps each IP to (harness.py, ``LocalCluster.dial_map``). An in-process operator is handed that
map as ``runner.Options.sidecar_dial``; a test that must SIGKILL operators or peer two of them needs
real processes, so this entry point parses the very same `run` command line (``runner.add_parser``)
and adds the map, given as JSON in ``DATAJAX_E2E_DIAL``. The product CLI has no such option: only a
test can route sidecar scrapes.

Usage: ``DATAJAX_E2E_DIAL='{...}' python dialling_operator.py run [the options of datajax-operator run]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

E2E = Path(__file__).resolve().parent
sys.path[:0] = [str(E2E), str(E2E.parent), str(E2E.parent / "integration")]

from datajax_operator import runner  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(prog="dialling_operator")
    runner.add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args()
    dial = json.loads(os.environ["DATAJAX_E2E_DIAL"])
    runner.run(dataclasses.replace(runner.options_from_args(args), sidecar_dial=dial))
    return 0


if __name__ == "__main__":
    sys.exit(main())
