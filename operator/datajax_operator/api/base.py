"""Shared pydantic configuration for the API models.

Every model speaks camelCase on the wire (Kubernetes convention) and snake_case in Python; the spec
models forbid unknown keys so a typo such as `tpu.topolgy` is reported instead of silently ignored.
"""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class SpecModel(BaseModel):
    """Base of spec models: camelCase aliases, unknown keys rejected, assignments validated."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
    )


class StatusModel(BaseModel):
    """Base of status models: camelCase aliases; unknown keys ignored so an older operator can read a
    newer status."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")
