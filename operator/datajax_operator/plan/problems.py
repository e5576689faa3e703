"""What the planner reports when a spec cannot be served: one Problem per field, all at once."""

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One reason a spec cannot be planned, naming the field (dotted path, e.g. spec.tpu.topology)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class PlanError(ValueError):
    """The spec failed pre-flight checks; `.problems` lists every failure, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))
