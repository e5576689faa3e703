"""`datajax-operator`: the command-line entry point.

Each subcommand is one `_add_<name>(subparsers)` function that registers its parser and sets
`func(args) -> exit code`; add a new one by writing such a function and listing it in SUBCOMMANDS.
Exit codes: 0 success, 1 unreadable input, 2 usage error or invalid spec (every problem printed to
stderr, one per line, naming the field).
"""

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from datajax_operator import runner
from datajax_operator.api.crd import build_crd
from datajax_operator.api.errors import validation_problems
from datajax_operator.api.reference import crd_reference
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.plan.config import OperatorConfig, load_config
from datajax_operator.plan.planner import make_plan
from datajax_operator.plan.problems import PlanError, Problem
from datajax_operator.plan.report import format_table
from datajax_operator.render.objects import render_objects
from datajax_operator.yamlload import load_bounded

EXIT_INVALID = 2
EXIT_UNREADABLE = 1


def dump_yaml(document: Any) -> str:
    """YAML as checked in and printed: key order kept, long lines never folded (diffs stay readable)."""
    return yaml.safe_dump(document, sort_keys=False, width=1_000_000, allow_unicode=True)


def _load_document(path: str) -> object:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return load_bounded(text)


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def _load_config(args: argparse.Namespace) -> OperatorConfig:
    return load_config(Path(args.config) if args.config else None)


def _cmd_plan(args: argparse.Namespace) -> int:
    try:
        document = _load_document(args.file)
        config = _load_config(args)
    except (OSError, yaml.YAMLError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_UNREADABLE
    except ValidationError as err:
        _print_problems(
            [
                Problem(f"{args.config}: {p.field}", p.message)
                for p in validation_problems(err, OperatorConfig)
            ]
        )
        return EXIT_INVALID
    try:
        model = DataJaxModel.model_validate(document)
        plan = make_plan(model, config)
    except ValidationError as err:
        _print_problems(validation_problems(err))
        return EXIT_INVALID
    except PlanError as err:
        _print_problems(err.problems)
        return EXIT_INVALID
    objects = render_objects(model, plan, config)
    if args.output == "table":
        sys.stdout.write(format_table(model.metadata.name, model.spec.replicas, plan))
    elif args.output == "yaml":
        sys.stdout.write(dump_yaml(plan.to_json(objects)))
    else:
        sys.stdout.write(json.dumps(plan.to_json(objects), indent=2) + "\n")
    return 0


def _add_plan(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "plan",
        help="validate a DataJaxModel offline and print its placement, mesh, cost, vLLM args and manifests",
    )
    parser.add_argument("-f", "--file", required=True, help="DataJaxModel YAML or JSON file ('-' for stdin)")
    parser.add_argument("-o", "--output", choices=("json", "yaml", "table"), default="json")
    parser.add_argument("--config", metavar="FILE", help="operator config (YAML/JSON): images, price table")
    parser.set_defaults(func=_cmd_plan)


def _cmd_crd(args: argparse.Namespace) -> int:
    sys.stdout.write(crd_reference() if args.reference else dump_yaml(build_crd()))
    return 0


def _add_crd(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser("crd", help="print the DataJaxModel CustomResourceDefinition")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="print the Markdown API reference (docs/crd-reference.md) instead of the CRD YAML",
    )
    parser.set_defaults(func=_cmd_crd)


SUBCOMMANDS: list[Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]] = [
    _add_plan,
    _add_crd,
    runner.add_parser,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="datajax-operator", description="Serve LLMs with vLLM on Cloud TPU under a cost ceiling."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return its exit code."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
