"""The callables a validation case can run: built-ins by name, or a plan's own by ``module:function``.

A program has the shape of a lowered DataJAX plan's callable: a mapping of named arrays in, a mapping of
named arrays out. It is traced under ``jax.jit`` with its inputs already placed by their PartitionSpecs,
so the output shardings are what the compiler's propagation decides - the thing being validated.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

Program = Callable[[Mapping[str, Any]], Mapping[str, Any]]


def attention_projection(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """Column-parallel query projection, then row-parallel output projection (an all-reduce on ``model``)."""

    q = arrays["x"] @ arrays["w_q"]
    return {"q": q, "out": q @ arrays["w_o"]}


BUILTINS: Mapping[str, Program] = {"attention_projection": attention_projection}


def resolve(name: str) -> Program:
    """A built-in by name, else ``package.module:function`` imported from the plan's code."""

    if name in BUILTINS:
        return BUILTINS[name]
    module, sep, attr = name.partition(":")
    if not sep:
        raise ValueError(f"program {name!r} is neither a built-in {sorted(BUILTINS)} nor 'module:function'")
    program: Program = getattr(importlib.import_module(module), attr)
    return program
