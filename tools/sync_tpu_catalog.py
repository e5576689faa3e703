"""Write every copy of the TPU catalog from its one source, `operator/datajax_operator/api/tpu_catalog.json`.

Why a generator: the operator and the runtime ship as separate distributions and the runtime must not
import the operator, so the runtime package carries a byte-identical copy of the catalog; and the
chart's default prices and its schema's list of generations are facts of the same records. `make crd`
runs this script; `--check` (and tests/unit/test_tpu_catalog.py) fail when any copy has drifted, so a
new generation is one record in the JSON plus `make crd`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "operator" / "datajax_operator" / "api" / "tpu_catalog.json"
RUNTIME_COPY = REPO / "runtime_image" / "datajax_runtime" / "tpu_catalog.json"
VALUES = REPO / "charts" / "datajax-operator" / "values.yaml"
SCHEMA = REPO / "charts" / "datajax-operator" / "values.schema.json"
TIERS = ("on-demand", "spot", "cud-1y", "cud-3y")
PRICES_BLOCK = re.compile(r"(?m)^(  prices:\n)((?:    .*\n)+)")


def _generations() -> dict[str, Any]:
    records: dict[str, Any] = json.loads(SOURCE.read_text(encoding="utf-8"))["generations"]
    return records


def prices_yaml() -> str:
    """The chart's `config.prices` block: every sourced price of the catalog, in catalog order."""
    lines = []
    for generation, record in _generations().items():
        prices = record["prices"]["usdPerChipHour"]
        if not prices:
            continue
        lines.append(f"    {generation}:")
        lines.extend(f"      {tier}: {prices[tier]:g}" for tier in TIERS if tier in prices)
    return "\n".join(lines) + "\n"


def expected_values(current: str) -> str:
    if not PRICES_BLOCK.search(current):
        raise SystemExit(f"{VALUES}: no `  prices:` block under config to rewrite")
    return PRICES_BLOCK.sub(lambda m: m.group(1) + prices_yaml(), current, count=1)


def expected_schema(current: str) -> str:
    schema = json.loads(current)
    pattern = "^(" + "|".join(_generations()) + ")$"
    schema["properties"]["config"]["properties"]["prices"]["propertyNames"]["pattern"] = pattern
    return json.dumps(schema, indent=2) + "\n"


def outputs() -> dict[Path, str]:
    """Every generated file and the text it must have."""
    return {
        RUNTIME_COPY: SOURCE.read_text(encoding="utf-8"),
        VALUES: expected_values(VALUES.read_text(encoding="utf-8")),
        SCHEMA: expected_schema(SCHEMA.read_text(encoding="utf-8")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a copy differs instead of writing")
    args = parser.parse_args(argv)
    drifted = []
    for path, text in outputs().items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        if args.check:
            drifted.append(str(path.relative_to(REPO)))
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    if drifted:
        print(
            f"out of date with {SOURCE.relative_to(REPO)}: {', '.join(drifted)}; run `make crd`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
