"""`datajax-operator run ...` as a process of its own, dialling the e2e stand-in sidecar addresses.

The e2e tier lists sidecars in EndpointSlices at 198.51.100.N, because the API server refuses loopback
addresses there, and serves them on 127.0.0.N (harness.py). An in-process operator is handed that map
as ``runner.Options.sidecar_dial``; a test that must SIGKILL operators or peer two of them needs real
processes, so this entry point parses the very same `run` command line (``runner.add_parser``) and
adds the map. The product CLI has no such option: only a test can route sidecar scrapes.

Usage: ``python dialling_operator.py run [the options of datajax-operator run]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

E2E = Path(__file__).resolve().parent
sys.path[:0] = [str(E2E), str(E2E.parent), str(E2E.parent / "integration"), str(E2E.parents[1])]

from harness import DIAL  # noqa: E402

from datajax_operator import runner  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(prog="dialling_operator")
    runner.add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args()
    runner.run(dataclasses.replace(runner.options_from_args(args), sidecar_dial=DIAL))
    return 0


if __name__ == "__main__":
    sys.exit(main())
