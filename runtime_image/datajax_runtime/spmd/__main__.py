"""``python -m datajax_runtime.spmd``: validate a mesh without the operator (e.g. inside the runtime image).

``datajax-operator validate-mesh -f model.yaml`` derives ``--chips/--hosts/--data-parallel`` from the
plan and calls the same ``launcher.validate``; this entry point takes them directly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from datajax_runtime.spmd.case import MeshCase, attention_projection_case
from datajax_runtime.spmd.launcher import validate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datajax_runtime.spmd", description=__doc__)
    parser.add_argument("--chips", type=int, required=True, help="devices in the slice (mesh size)")
    parser.add_argument("--hosts", type=int, default=1, help="processes to start, one per TPU VM")
    parser.add_argument("--data-parallel", type=int, default=1, help="size of the 'data' axis")
    parser.add_argument("--case", type=Path, help="case JSON (mesh, inputs/outputs with PartitionSpecs)")
    parser.add_argument("-o", "--output", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    if args.case is not None:
        case = MeshCase.from_json(json.loads(args.case.read_text()))
    elif args.chips % args.data_parallel:
        parser.error(f"--data-parallel {args.data_parallel} does not divide --chips {args.chips}")
    else:
        case = attention_projection_case(args.data_parallel, args.chips // args.data_parallel)
    report = validate(case, args.hosts)
    if args.output == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        mesh = ", ".join(f"{a}={s}" for a, s in zip(case.axes, case.shape, strict=True))
        verdict = "ok" if report.ok else "MIS-SHARDED"
        print(f"mesh ({mesh}) on {report.hosts} host(s): {verdict} in {report.seconds:.1f}s")
        for problem in report.problems:
            print(f"  {problem}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
