"""`datajax-operator run ...` for make bench's traffic scenario: the very `run` command line
(``runner.add_parser``), plus the route from the stand-in sidecar address to the loopback farm
(``sidecar_farm.py``). Whichever ``datajax_operator`` is first on ``sys.path`` runs, so the bench can
run the code of another checkout (``--baseline``) through the same entry point.

Usage: ``python bench_operator.py run [the options of datajax-operator run]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from datajax_operator import runner

STAND_IN = "198.51.100.1"  # sidecar_farm.STAND_IN (not imported: this runs against another checkout too)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench_operator")
    runner.add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args()
    print(
        f"bench_operator: datajax_operator from {Path(runner.__file__).parent}", file=sys.stderr, flush=True
    )
    runner.run(dataclasses.replace(runner.options_from_args(args), sidecar_dial={STAND_IN: "127.0.0.1"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
