"""What the planner reports when a spec cannot be served: one Problem per field, all at once."""

from datajax_operator.api.errors import Problem

__all__ = ["PlanError", "Problem"]


class PlanError(ValueError):
    """The spec failed pre-flight checks; `.problems` lists every failure, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))
