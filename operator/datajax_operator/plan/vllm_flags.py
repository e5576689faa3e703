"""Which `vllm serve` flags exist, and which spec field a flag in serving.extraArgs would override.

The operator runs without vLLM, so the flags come from `vllm_flags.json`, written from the real
parser of the pinned vLLM release by `tools/vllm_flags.py` (run in the tpu-env; a tpu_stack test fails
when the file drifts from that parser). An extraArgs token is read the way vLLM reads it:
vLLM's FlexibleArgumentParser (vllm/utils/argparse_utils.py) first rewrites each `--name` so that
underscores become dashes (up to the first '.'), turns `-O3` into `--optimization-level 3`, and
folds dotted `--json-arg.key value` pairs into `--json-arg`; Python's argparse then matches option
strings exactly or, since vLLM keeps argparse's `allow_abbrev`, by a unique prefix. The same table is
rebuilt here as a stdlib parser so abbreviations resolve exactly as argparse resolves them; the result
says which destinations (`tensor_parallel_size`, ...) each token sets.
"""

import argparse
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final, NoReturn

FLAGS_FILE: Final = "vllm_flags.json"

INDIRECT_FLAGS: Final = ("--config",)
"""Flags that read further flags from elsewhere (`--config FILE` inserts a YAML file's keys as flags),
so what they set cannot be checked here."""

_NAME_PART = re.compile(r"(?<=--)[^.]*")


class FlagError(ValueError):
    """vLLM's parser would refuse the arguments; the message is argparse's own."""


@dataclass(frozen=True)
class FlagTable:
    """The real parser's optional arguments, as recorded in vllm_flags.json."""

    vllm_version: str
    allow_abbrev: bool
    actions: tuple[dict[str, Any], ...]

    def dests_of(self, option: str) -> str | None:
        """The destination of an exact option string (None when vLLM has no such option)."""
        for action in self.actions:
            if option in action["options"]:
                return str(action["dest"])
        return None


@cache
def flag_table() -> FlagTable:
    """The committed table (read once)."""
    doc = json.loads(resources.files("datajax_operator.plan").joinpath(FLAGS_FILE).read_text("utf-8"))
    return FlagTable(doc["vllm"], bool(doc["allowAbbrev"]), tuple(doc["actions"]))


def normalise(args: list[str]) -> list[str]:
    """The tokens after vLLM's own rewriting (underscores, -O, dotted JSON keys), before argparse."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg.startswith("--"):
            key, sep, value = arg.partition("=")
            key = _NAME_PART.sub(lambda m: m.group(0).replace("_", "-"), key, count=1)
            if "." in key:  # --json-arg.key[+] value: vLLM folds it into --json-arg '{...}'
                out += [key.split(".", 1)[0], value if sep else "{}"]
                skip = not sep and i + 1 < len(args)
                continue
            out.append(f"{key}={value}" if sep else key)
        elif arg.startswith("-O") and arg != "-O":
            out += ["--optimization-level", arg[3:] if arg[2:3] == "=" else arg[2:]]
        elif arg == "-O" and i + 1 < len(args) and args[i + 1] in {"0", "1", "2", "3"}:
            out.append("--optimization-level")
        else:
            out.append(arg)
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise FlagError(message)


@cache
def _parser() -> _Parser:
    table = flag_table()
    parser = _Parser(
        prog="vllm serve",
        add_help=False,
        allow_abbrev=table.allow_abbrev,
        argument_default=argparse.SUPPRESS,
        exit_on_error=False,
    )
    for action in table.actions:
        if action["takesValue"]:
            parser.add_argument(
                *action["options"], dest=action["dest"], nargs=action["nargs"], choices=action.get("choices")
            )
        else:
            parser.add_argument(*action["options"], dest=action["dest"], action="store_const", const=True)
    return parser


def dests_set_by(args: list[str]) -> set[str]:
    """The destinations that `args` (extraArgs) set in vLLM's parser; FlagError if it refuses them."""
    if any(a == f or a.startswith(f"{f}=") for a in args for f in INDIRECT_FLAGS):
        raise FlagError(
            f"{', '.join(INDIRECT_FLAGS)} loads further flags from a file the operator cannot check"
        )
    try:
        namespace = _parser().parse_args(normalise(args))
    except argparse.ArgumentError as err:
        raise FlagError(str(err)) from None
    return set(vars(namespace))
