"""`datajax-operator`: the command-line entry point.

Each subcommand is one `_add_<name>(subparsers)` function that registers its parser and sets
`func(args) -> exit code`; add a new one by writing such a function and listing it in SUBCOMMANDS.
Exit codes: 0 success, 1 unreadable input (or, for validate-mesh, a mis-sharded plan: one line per
problem naming the array and the mesh axis), 2 usage error or invalid spec (every problem printed to
stderr, one per line, naming the field).
"""

import argparse
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from datajax_operator import runner, status_command
from datajax_operator.api.crd import build_crd
from datajax_operator.api.errors import validation_problems
from datajax_operator.api.reference import crd_reference
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.plan.config import OperatorConfig, load_config
from datajax_operator.plan.gate_request import (
    COMPILE_GATE_FIELD,
    GateError,
    gate_request,
    model_shape_from_spec,
)
from datajax_operator.plan.planner import Plan, make_plan
from datajax_operator.plan.problems import PlanError, Problem
from datajax_operator.plan.report import format_table
from datajax_operator.render.gate import planned_gate
from datajax_operator.render.objects import render_objects
from datajax_operator.yamlload import load_bounded

EXIT_INVALID = 2
EXIT_UNREADABLE = 1
EXIT_MIS_SHARDED = 1


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


def _load_wave_spec(path: str | None) -> dict[str, Any] | None:
    """The exporter's JSON from --wavespec, decoded; its fields are checked by the planner."""
    if path is None:
        return None
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path}: a wave spec is a JSON object")
    return document


@dataclass(frozen=True)
class _Planned:
    model: DataJaxModel
    config: OperatorConfig
    plan: Plan
    wave_spec: dict[str, Any] | None
    document: dict[str, Any]
    """The model as read (validated as ``model``)."""


def _plan_from_args(args: argparse.Namespace, wave_spec_path: str | None = None) -> _Planned | int:
    """Load ``-f``, ``--config`` and the wave spec and plan them; or print why not and return the exit
    code (the same rules for every subcommand that plans)."""
    try:
        document = _load_document(args.file)
        config = _load_config(args)
        wave_spec = _load_wave_spec(wave_spec_path)
    except ValidationError as err:  # before ValueError, which it subclasses
        _print_problems(
            [
                Problem(f"{args.config}: {p.field}", p.message)
                for p in validation_problems(err, OperatorConfig)
            ]
        )
        return EXIT_INVALID
    except (OSError, yaml.YAMLError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        model = DataJaxModel.model_validate(document)
        plan = make_plan(model, config, wave_spec)
    except ValidationError as err:
        _print_problems(validation_problems(err))
        return EXIT_INVALID
    except PlanError as err:
        _print_problems(err.problems)
        return EXIT_INVALID
    assert isinstance(document, dict)  # model_validate accepted it
    return _Planned(model, config, plan, wave_spec, document)


def _cmd_plan(args: argparse.Namespace) -> int:
    planned = _plan_from_args(args, args.wavespec)
    if isinstance(planned, int):
        return planned
    model, config, plan, wave_spec = planned.model, planned.config, planned.plan, planned.wave_spec
    ref = model.spec.plan.wave_spec_ref if model.spec.plan else None
    if ref is not None and wave_spec is None:
        print(
            f"warning: spec.plan.waveSpecRef names ConfigMap {ref.name} (key {ref.key}), which the operator "
            "reads in the cluster; pass --wavespec FILE to plan with it offline",
            file=sys.stderr,
        )
    if args.output != "table":  # the table lists them itself
        for warning in plan.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    try:
        gate = planned_gate(model, plan, config)
    except GateError as err:
        _print_problems([Problem(COMPILE_GATE_FIELD, str(err))])
        return EXIT_INVALID
    # the gate Job first: the operator applies it, and the workload only once it fits
    objects = [*([gate] if gate is not None else []), *render_objects(model, plan, config)]
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
    parser.add_argument(
        "--wavespec",
        metavar="FILE",
        help="datajax-export-wavespec JSON to derive serving defaults from (offline stand-in for the "
        "ConfigMap named by spec.plan.waveSpecRef)",
    )
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


RUNTIME_HINT = "pip install ./runtime_image (datajax-runtime: its SPMD programs run the check)"


def _cmd_validate_mesh(args: argparse.Namespace) -> int:
    # Both targets run the runtime's programs, a separate distribution the operator image leaves out.
    if importlib.util.find_spec("datajax_runtime") is None:
        print(f"error: validate-mesh needs datajax-runtime: {RUNTIME_HINT}", file=sys.stderr)
        return EXIT_UNREADABLE
    planned = _plan_from_args(args)
    if isinstance(planned, int):
        return planned
    if args.target == "tpu":
        return _validate_mesh_tpu(args, planned)
    from datajax_operator import validate_mesh  # starts processes; `plan` and `crd` need none of it

    model, plan = planned.model, planned.plan
    if not validate_mesh.jax_available():
        print(f"error: validate-mesh needs JAX: {validate_mesh.MESH_EXTRA_HINT}", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        mesh = validate_mesh.mesh_run(plan, args.bundle or ())
    except validate_mesh.MeshInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_MIS_SHARDED
    report = validate_mesh.run(mesh, timeout=args.timeout or 180.0)
    if args.output == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        print(validate_mesh.summary(model.metadata.name, plan, mesh, report))
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 0 if report.ok else EXIT_MIS_SHARDED


def _validate_mesh_tpu(args: argparse.Namespace, planned: "_Planned") -> int:
    """The compile gate (DESIGN §6): exit 0 fits, 1 does not fit, 2 invalid spec or unusable request."""
    from datajax_operator import compile_gate  # starts a process in the tpu-env

    model, plan = planned.model, planned.plan
    try:
        python = compile_gate.find_tpu_python(args.python)
        if args.hf_config:
            shape = compile_gate.model_shape_from_hf_config(args.hf_config)
        else:
            shape = model_shape_from_spec(model.spec)
        request = gate_request(plan, model.spec, shape)
        verdict = compile_gate.run(request, python, timeout=args.timeout or 1800.0)
    except GateError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    document = verdict.document
    document["program"]["shapes"] = shape["source"]
    if args.output == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        print(compile_gate.summary(model.metadata.name, document))
    return verdict.exit_code


def _add_validate_mesh(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "validate-mesh",
        help="cpu: run the plan's mesh and PartitionSpecs on CPU devices (one JAX process per host) and "
        "check the sharding of every output; tpu: compile the serving program with libtpu's TPU compiler "
        "for the planned topology and check it fits each device's HBM",
    )
    parser.add_argument("-f", "--file", required=True, help="DataJaxModel YAML or JSON file ('-' for stdin)")
    parser.add_argument(
        "--target",
        choices=("cpu", "tpu"),
        default="cpu",
        help="cpu (default): simulated CPU devices; tpu: libtpu's compiler, no TPU needed (exit 0 fits, "
        "1 does not fit, 2 invalid)",
    )
    parser.add_argument(
        "--bundle",
        metavar="FILE",
        action="append",
        help="DataJAX plan bundle (JSON) to validate; repeat once per host to give each host its own copy",
    )
    parser.add_argument(
        "--hf-config",
        metavar="FILE",
        help="--target tpu: the model's Hugging Face config.json (shapes); else estimated from spec.model",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        help="--target tpu: interpreter with JAX and libtpu (default $DATAJAX_TPU_PYTHON, else the tpu-env "
        "of `make tpu-env`)",
    )
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument("--config", metavar="FILE", help="operator config (YAML/JSON)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds before the hosts (cpu, default 180) or the compile (tpu, default 1800) are stopped",
    )
    parser.set_defaults(func=_cmd_validate_mesh)


def _cmd_replay(args: argparse.Namespace) -> int:
    from datajax_operator import replay  # the judgement and rendering; `crd` needs none of it

    planned = _plan_from_args(args)
    if isinstance(planned, int):
        return planned
    try:
        with Path(args.scrapes).open(encoding="utf-8") as lines:
            passes = replay.read_timeline(lines, args.scrapes)
    except (OSError, UnicodeDecodeError, replay.TimelineError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_UNREADABLE
    timeline = replay.replay(planned.document, passes, planned.config)
    if args.output == "table":
        sys.stdout.write(replay.table(timeline))
    else:
        sys.stdout.write(json.dumps({"timeline": timeline}, indent=2) + "\n")
    return 0


def _add_replay(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "replay",
        help="run the operator's cost and latency judgement offline over a recorded timeline of figures "
        "(datajax-sidecar record): conditions, replicas and Events per pass",
    )
    parser.add_argument("-f", "--file", required=True, help="DataJaxModel YAML or JSON file")
    parser.add_argument(
        "--scrapes",
        required=True,
        metavar="FILE.jsonl",
        help='one JSON line per observation pass: {"t": seconds, "slices": [FIGURES | null, ...]}, '
        "FIGURES being the datajax-sidecar analyze JSON keys, null a failed scrape",
    )
    parser.add_argument("-o", "--output", choices=("json", "table"), default="json")
    parser.add_argument("--config", metavar="FILE", help="operator config (YAML/JSON): price table")
    parser.set_defaults(func=_cmd_replay)


def _add_status(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = subparsers.add_parser(
        "status",
        help="one model's placement, figures against its ceiling, conditions and Events; or --all",
        epilog=status_command.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status_command.add_arguments(parser)
    parser.set_defaults(func=lambda args: status_command.run(status_command.options_from(args, parser.error)))


SUBCOMMANDS: list[Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]] = [
    _add_plan,
    _add_crd,
    runner.add_parser,
    _add_validate_mesh,
    _add_status,
    _add_replay,
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
