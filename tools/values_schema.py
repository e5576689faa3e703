"""Generate the `config` object of the chart's values.schema.json from `OperatorConfig`.

The chart writes `config` verbatim into the operator's config file, so what helm accepts there must be
what the operator accepts: the schema is derived from the pydantic model, as the CRD is from the spec
(`make crd` runs this; `--check` and tests/unit/test_values_schema.py fail when the file has
drifted). The rest of values.schema.json (images, RBAC, monitoring, alerts, ...) describes the chart's
own templates and stays hand-written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from datajax_operator.plan.config import OperatorConfig

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "charts" / "datajax-operator" / "values.schema.json"


def _draft07(node: Any) -> Any:
    """pydantic's JSON Schema without its titles (helm shows descriptions; titles only repeat names)."""
    if isinstance(node, dict):
        return {k: _draft07(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_draft07(v) for v in node]
    return node


def config_schema() -> dict[str, Any]:
    """The `config` object: OperatorConfig's fields by their camelCase names, unknown keys refused."""
    schema: dict[str, Any] = _draft07(OperatorConfig.model_json_schema(by_alias=True, mode="validation"))
    assert "$defs" not in schema, "OperatorConfig grew a nested model: inline its $defs here"
    schema["description"] = "Operator configuration (OperatorConfig), written verbatim to its config file."
    return schema


def expected(current: str) -> str:
    """values.schema.json with its `config` object regenerated, everything else as it is."""
    document = json.loads(current)
    document["properties"]["config"] = config_schema()
    return json.dumps(document, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail when the file differs instead of writing")
    args = parser.parse_args(argv)
    current = SCHEMA.read_text(encoding="utf-8")
    wanted = expected(current)
    if current == wanted:
        return 0
    if args.check:
        print(
            f"{SCHEMA.relative_to(REPO)} is out of date with OperatorConfig: run `make crd`", file=sys.stderr
        )
        return 1
    SCHEMA.write_text(wanted, encoding="utf-8")
    print(f"wrote {SCHEMA.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
