"""docs/crd-reference.md: generated from the CRD, complete, and never drifting from the typed model."""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from djm_fixtures import ROOT

from datajax_operator.api.crd import build_crd
from datajax_operator.api.reference import crd_reference
from datajax_operator.api.rules import RULES
from datajax_operator.cli import main

REFERENCE = ROOT / "docs" / "crd-reference.md"


def _root() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _fields(node: dict[str, Any], path: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(section, field name, schema) of every field below spec and status."""
    for name, child in node.get("properties", {}).items():
        yield path, name, child
        if "properties" in child:
            yield from _fields(child, f"{path}.{name}")
        elif child.get("type") == "array" and "properties" in child["items"]:
            yield from _fields(child["items"], f"{path}.{name}[]")


def _section_rows(text: str) -> dict[str, dict[str, str]]:
    """section heading -> field name -> its table row, parsed back out of the Markdown."""
    rows: dict[str, dict[str, str]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:]
            rows[section] = {}
        match = re.match(r"\| `([A-Za-z0-9]+)`", line)
        if match and section:
            rows[section][match.group(1)] = line
    return rows


def test_checked_in_reference_is_the_generated_one() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == crd_reference(), (
        "docs/crd-reference.md drifted from the typed model: run `make docs` and commit the result"
    )


def test_every_field_has_a_row_with_its_type_default_and_description() -> None:
    rows = _section_rows(crd_reference())
    root = _root()
    checked = 0
    for top in ("spec", "status"):
        for section, name, schema in _fields(root["properties"][top], top):
            row = rows[section][name]
            assert schema["description"] and " ".join(schema["description"].split()) in row.replace(
                "\\|", "|"
            ), f"{section}.{name}: description missing from its row"
            if "default" in schema:
                default = schema["default"]
                shown = default if isinstance(default, str) and default else json.dumps(default)
                assert f"| `{shown}` |" in row, f"{section}.{name}: default {default!r} missing"
            checked += 1
    assert checked >= 60, f"only {checked} fields walked: the schema walk lost part of the API"


def test_constraints_are_spelled_out() -> None:
    rows = _section_rows(crd_reference())
    assert "≥ 0; ≤ 1000" in rows["spec"]["replicas"]
    assert "> 0; ≤ 1000000" in rows["spec.cost"]["ceilingUSDPerMillionTokens"]
    assert "one of `Alert`, `ScaleDown`, `Suspend`" in rows["spec.cost"]["action"]
    assert r"matches `^[1-9][0-9]{0,4}(s\|m\|h)$`" in rows["spec.cost"]["window"]
    assert "1..2 items; each value once; each item one of `data`, `model`" in rows["spec.mesh"]["axes"]
    assert "keyed by name" in rows["spec.serving"]["env"]
    assert rows["spec"]["model"].startswith("| `model` (required) | [object](#specmodel)")


def test_every_cel_rule_message_is_documented_at_its_field() -> None:
    text = crd_reference()
    for rule in RULES:
        assert f"- `{rule.path}`: {rule.message}" in text, f"rule {rule.name} is not documented"
        assert rule.cel in text


def test_links_point_at_sections_that_exist() -> None:
    text = crd_reference()
    anchors = {
        "".join(c for c in h.lower() if c.isalnum() or c in "-_")
        for h in re.findall(r"^## (.+)$", text, re.M)
    }
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links and set(links) <= anchors, set(links) - anchors


def test_crd_reference_flag_prints_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd", "--reference"]) == 0
    assert capsys.readouterr().out == crd_reference()
