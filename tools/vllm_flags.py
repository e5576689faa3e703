"""Write (or check) operator/datajax_operator/plan/vllm_flags.json from the real `vllm serve` parser.

Run with the tpu-env's interpreter, which has the pinned vLLM:

    $(tools/tpu-env.sh) tools/vllm_flags.py           # rewrite the table
    $(tools/tpu-env.sh) tools/vllm_flags.py --check   # exit 1 if the committed table differs

The parser is built as `vllm serve` builds it (vllm/entrypoints/cli/main.py: a FlexibleArgumentParser
with one subparser per command; serve's from vllm/entrypoints/cli/serve.py over
vllm.entrypoints.launchers.cli_args.make_arg_parser in vLLM 0.29). Every optional argument is recorded
with its option strings, destination, arity, choices and value type (`value_type`), and whether the
parser allows abbreviations, so the operator can read serving.extraArgs as this parser would
(datajax_operator.plan.vllm_flags).
"""

import argparse
import inspect
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

TABLE = Path(__file__).resolve().parents[1] / "operator" / "datajax_operator" / "plan" / "vllm_flags.json"


def cli_parsers() -> tuple[Any, Any, Any]:
    """The `vllm` parser, the serve command and its subparser, as vllm/entrypoints/cli/main.py builds
    them (a FlexibleArgumentParser whose subparsers come from each command's subparser_init)."""
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm", description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    command = ServeSubcommand()
    return parser, command, command.subparser_init(subparsers)


def _closed_over(converter: Any) -> Any:
    """The `return_type` a vLLM converter wrapper closes over (vllm/engine/arg_utils.py: parse_type and
    optional_type each return an inner function calling `return_type(val)`)."""
    return inspect.getclosurevars(converter).nonlocals["return_type"]


def _folds_names(converter: Any) -> bool:
    """Whether a lambda converter lower-cases a name and reads '-' as '_', as --moe-backend's and
    --linear-backend's do (vllm/engine/arg_utils.py add_cli_args: `lambda s: s.lower().replace("-",
    "_")`). Probed by what it returns, since a lambda has no name to match."""
    if getattr(converter, "__name__", "") != "<lambda>":
        return False
    try:
        return bool(converter("Ab-C_d") == "ab_c_d" and converter("X") == "x")
    except Exception:  # any other lambda (e.g. --device-ids' int list) stays unchecked
        return False


def value_type(converter: Any) -> dict[str, Any]:
    """How the parser converts an action's value, as a name the operator knows how to check.

    vLLM derives `type=` from each config field's annotation in `_compute_kwargs`
    (vllm/engine/arg_utils.py): `int`, `float`, `str` (also for Literal[str] choices and non-builtin
    types), `human_readable_int` / `human_readable_int_or_auto` (vllm/utils/argparse_utils.py) for a
    few token counts and max_model_len, `union_dict_and_str` for dict-or-str fields, `parse_type(json.loads)`
    for dict fields, a pydantic `parse_dataclass` for config objects; a field that may be None is
    wrapped in `optional_type`, which also takes "" and "None". A bool field becomes a
    BooleanOptionalAction taking no value, so no value-taking action of this release parses booleans.
    A lambda that folds a name (lower case, '-' read as '_') is recorded as "foldedName"; any other
    callable (a lambda, pydantic validation of a config dataclass) is recorded as "unchecked": the
    operator leaves such values to vLLM.
    """
    from vllm.engine.arg_utils import union_dict_and_str
    from vllm.utils.argparse_utils import human_readable_int, human_readable_int_or_auto

    optional = False
    if getattr(converter, "__qualname__", "") == "optional_type.<locals>._optional_type":
        optional, converter = True, _closed_over(converter)
    if getattr(converter, "__qualname__", "") == "parse_type.<locals>._parse_type":
        converter = _closed_over(converter)
    known = {
        None: "str",  # argparse's default: the string itself
        str: "str",
        int: "int",
        float: "float",
        json.loads: "json",
        human_readable_int: "humanReadableInt",
        human_readable_int_or_auto: "humanReadableIntOrAuto",
        union_dict_and_str: "jsonObjectOrStr",
    }
    name = next((n for c, n in known.items() if c is converter), "unchecked")
    if name == "unchecked" and _folds_names(converter):
        name = "foldedName"
    return {"type": name, "optional": True} if optional and name != "unchecked" else {"type": name}


def table() -> dict[str, Any]:
    """The document vllm_flags.json holds."""
    _, _, parser = cli_parsers()
    actions = []
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        nargs = action.nargs
        entry: dict[str, Any] = {
            "dest": action.dest,
            "options": sorted(action.option_strings),
            "nargs": nargs if isinstance(nargs, (int, str)) or nargs is None else str(nargs),
            "takesValue": nargs != 0,
        }
        if action.choices is not None and nargs != 0:
            entry["choices"] = sorted(str(c) for c in action.choices)
        if nargs != 0:
            entry.update(value_type(action.type))
        actions.append(entry)
    return {
        "vllm": metadata.version("vllm-tpu"),
        "generatedBy": "tools/vllm_flags.py (the `vllm serve` parser of this vLLM release)",
        "allowAbbrev": bool(parser.allow_abbrev),
        "actions": sorted(actions, key=lambda a: str(a["dest"])),
    }


def main(argv: list[str]) -> int:
    text = json.dumps(table(), indent=1, sort_keys=True) + "\n"
    if argv[1:] == ["--check"]:
        if TABLE.read_text(encoding="utf-8") != text:
            print(
                f"{TABLE} differs from the installed vLLM's parser: run tools/vllm_flags.py", file=sys.stderr
            )
            return 1
        return 0
    TABLE.write_text(text, encoding="utf-8")
    print(f"wrote {TABLE}: {len(json.loads(text)['actions'])} options of vLLM {json.loads(text)['vllm']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
