"""`python -m datajax_devtools.demo [--short]`: the local demo `make run` starts (see script.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from datajax_devtools.demo.script import FULL, SHORT, run_demo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datajax_devtools.demo",
        description="The whole product on this machine: a real control plane, the operator and the sidecars, "
        "driven by simulated vLLM traffic until the cost ceiling is breached and recovered.",
    )
    parser.add_argument("--short", action="store_true", help="shorter windows and no pauses (for tests)")
    parser.add_argument(
        "--model", type=Path, default=Path("examples/llama3-8b-v6e.yaml"), help="the model to serve"
    )
    parser.add_argument("--repo", type=Path, default=Path("."), help="checkout holding crds/ (default: .)")
    parser.add_argument("--workdir", type=Path, help="state and logs (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs) afterwards")
    args = parser.parse_args(argv)
    return run_demo(
        args.repo.resolve(),
        model_file=args.model,
        timing=SHORT if args.short else FULL,
        workdir=args.workdir,
        keep=args.keep,
    )


if __name__ == "__main__":
    sys.exit(main())
