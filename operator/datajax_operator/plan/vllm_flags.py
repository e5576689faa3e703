"""Which `vllm serve` flags exist, and which spec field a flag in serving.extraArgs would override.

The operator runs without vLLM, so the flags come from `vllm_flags.json`, written from the real
parser of the pinned vLLM release by `tools/vllm_flags.py` (run in the tpu-env; a tpu_stack test fails
when the file drifts from that parser). An extraArgs token is read the way vLLM reads it:
vLLM's FlexibleArgumentParser (vllm/utils/argparse_utils.py) first rewrites each `--name` so that
underscores become dashes (up to the first '.'), turns `-O3` into `--optimization-level 3`, and
folds dotted `--json-arg.key value` pairs into `--json-arg`; Python's argparse then matches option
strings exactly or, since vLLM keeps argparse's `allow_abbrev`, by a unique prefix. The same table is
rebuilt here as a stdlib parser so abbreviations resolve exactly as argparse resolves them; the result
says which destinations (`tensor_parallel_size`, ...) each token sets. Each value is also converted
as the recorded type says vLLM converts it (`VALUE_TYPES`), so `--seed abc` is refused here rather
than when vLLM starts in a pod; a type recorded as "unchecked" is left to vLLM.
"""

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final, NoReturn

FLAGS_FILE: Final = "vllm_flags.json"

INDIRECT_FLAGS: Final = ("--config",)
"""Flags that read further flags from elsewhere (`--config FILE` inserts a YAML file's keys as flags),
so what they set cannot be checked here."""

_NAME_PART = re.compile(r"(?<=--)[^.]*")

_HUMAN_INT = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")
_BRACED = re.compile(r"(?s)^\s*{.*}\s*$")
_DECIMAL_SUFFIX: Final = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def _human_readable_int(value: str) -> int:
    """vLLM's human_readable_int (vllm/utils/argparse_utils.py): `8192`, `8k` (10**3), `8K` (2**10);
    a decimal only with a decimal suffix (`25.6k`)."""
    value = value.strip()
    match = _HUMAN_INT.fullmatch(value)
    if match:
        number, suffix = match.groups()
        if suffix in _DECIMAL_SUFFIX:
            return int(float(number) * _DECIMAL_SUFFIX[suffix])
        return int(number) << (10 * "KMGT".index(suffix) + 10)  # ValueError on 1.5K, as in vLLM
    return int(value)


def _human_readable_int_or_auto(value: str) -> int:
    """vLLM's human_readable_int_or_auto (vllm/utils/argparse_utils.py): also `-1` and `auto`."""
    value = value.strip()
    return -1 if value == "-1" or value.lower() == "auto" else _human_readable_int(value)


def _json_object_or_str(value: str) -> object:
    """vLLM's union_dict_and_str (vllm/engine/arg_utils.py): JSON when the value is written in braces."""
    return json.loads(value) if _BRACED.match(value) else value


def _folded_name(value: str) -> str:
    """--moe-backend's and --linear-backend's conversion (vllm/engine/arg_utils.py add_cli_args): the
    value in lower case with '-' as '_', then compared with the choices."""
    return value.lower().replace("-", "_")


VALUE_TYPES: Final[dict[str, tuple[Callable[[str], object], str]]] = {
    "str": (str, "a string"),
    "int": (int, "an integer, such as 8 or -1"),
    "float": (float, "a number, such as 0.9 or 1e-3"),
    "humanReadableInt": (
        _human_readable_int,
        "an integer, optionally with a k/m/g/t (powers of 1000) or K/M/G/T (powers of 1024) suffix, "
        "such as 8192, 8k or 8K",
    ),
    "humanReadableIntOrAuto": (
        _human_readable_int_or_auto,
        "auto, -1, or an integer, optionally with a k/m/g/t or K/M/G/T suffix, such as 8192 or 8k",
    ),
    "json": (json.loads, "a JSON value, such as '{\"key\": 1}'"),
    "jsonObjectOrStr": (_json_object_or_str, "a string, or a valid JSON object when written in braces"),
    "foldedName": (_folded_name, "a name, read in lower case with '-' as '_'"),
}
"""How vLLM converts a value of each recorded type (tools/vllm_flags.py classifies the real parser's
`type=`), with what it expects in words. vLLM's own error is argparse's; ours names the fix."""


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


def _checker(action: dict[str, Any]) -> Callable[[str], object]:
    """An argparse `type=` that converts a value as vLLM would (`str`, the value itself, when the table
    leaves the type to vLLM). argparse then compares the converted value with `choices`, as vLLM's
    parser does."""
    kind = action.get("type", "unchecked")
    if kind not in VALUE_TYPES:
        return str
    convert, expected = VALUE_TYPES[kind]
    optional = bool(action.get("optional"))
    if optional:  # vLLM's optional_type (vllm/engine/arg_utils.py) reads "" and "None" as unset
        expected += ", or None to leave it unset"

    def check(value: str) -> object:
        if optional and value in ("", "None"):
            return value
        try:
            return convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expects {expected} (vLLM converts it as {kind}), not {value!r}: change the value"
            ) from None

    return check


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
            check = _checker(action)
            choices = action.get("choices")  # recorded as strings: convert them as the values are
            parser.add_argument(
                *action["options"],
                dest=action["dest"],
                nargs=action["nargs"],
                choices=[check(c) for c in choices] if choices else None,
                type=check,
            )
        else:
            parser.add_argument(*action["options"], dest=action["dest"], action="store_const", const=True)
    return parser


def is_negative_number(token: str) -> bool:
    """Whether argparse reads `token` as a value rather than an option: a negative number, while the
    parser has no option string that looks like one (true of vLLM's, so true of the one rebuilt here)."""
    parser = _parser()
    return not parser._has_negative_number_optionals and bool(parser._negative_number_matcher.match(token))


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
