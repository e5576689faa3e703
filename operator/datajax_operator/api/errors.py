"""Validation errors as (field path, message) pairs that tell a user which field to fix and how.

pydantic's own messages name the constraint ("String should match pattern '^[1-9]...'"); for the
format errors this adds the field's description, which says what a valid value looks like. The CLI
and the operator's SpecValid condition both use it, so a user reads the same words in both places.
"""

import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ValidationError

from datajax_operator.api.resource import DataJaxModel

Severity = Literal["error", "warning"]
"""`error`: the spec cannot be served as written. `warning`: it serves, but some requests will suffer."""

_EXPLAINED = frozenset({"string_pattern_mismatch", "string_too_long", "string_too_short"})


@dataclass(frozen=True, order=True)
class Problem:
    """One reason a spec cannot be served (or, as a warning, serves badly), naming the field.

    The field is a dotted path such as spec.tpu.topology. Only errors stop a plan; warnings travel
    with the plan so `plan` and the operator can show them.
    """

    field: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def field_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a dotted path: ('spec', 'env', 0, 'name') -> spec.env[0].name."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(document)"


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `X | None` or `list[X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def field_description(loc: Sequence[int | str], root: type[BaseModel] = DataJaxModel) -> str | None:
    """The description of the field at loc (aliases as in the document), or None when unknown."""
    model: type[BaseModel] | None = root
    description = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        match = next(
            (f for name, f in model.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if match is None:
            return None
        description = match.description
        model = _model_in(match.annotation)
    return description


def validation_problems(error: ValidationError, root: type[BaseModel] = DataJaxModel) -> list[Problem]:
    """Every pydantic error as a Problem naming the field and, for format errors, the expected form."""
    problems = []
    for e in error.errors():
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] in _EXPLAINED:
            hint = field_description(e["loc"], root)
            if hint:
                message = f"{message}. Expected: {hint}"
        problems.append(Problem(field_path(e["loc"]), message))
    return problems
