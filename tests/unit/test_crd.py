"""The generated CRD: no drift from crds/, structural schema, descriptions, CEL that agrees with Python."""

from collections.abc import Iterator
from typing import Any

import celpy
import pytest
import yaml
from djm_fixtures import EXAMPLES, ROOT, doc_with
from test_checks import BAD, GOOD

from datajax_operator.api import DataJaxModel
from datajax_operator.api.crd import build_crd
from datajax_operator.api.rules import RULES, scope_object
from datajax_operator.cli import dump_yaml

CRD_FILE = ROOT / "crds" / "datajaxmodels.datajax.dev.yaml"


def _schema() -> dict[str, Any]:
    version: dict[str, Any] = build_crd()["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_checked_in_crd_is_the_generated_one() -> None:
    assert CRD_FILE.read_text() == dump_yaml(build_crd()), (
        "crds/ drifted: run `make crd` and commit the result"
    )


def test_names_scope_and_subresources() -> None:
    crd = build_crd()
    assert crd["metadata"]["name"] == "datajaxmodels.datajax.dev"
    assert crd["spec"]["names"]["shortNames"] == ["djm"]
    assert crd["spec"]["scope"] == "Namespaced"
    [version] = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["TPU", "Topology", "Replicas", "Ready", "$/Mtok", "P95", "PrefixHit", "Ceiling", "Age"]


def test_schema_is_structural() -> None:
    forbidden = {"$ref", "anyOf", "allOf", "oneOf", "const", "title", "uniqueItems", "$defs"}
    for path, node in _walk(_schema()):
        if node.get("x-kubernetes-int-or-string") is True:  # a quantity: no type, by the rules
            assert not {"type", "properties", "items"} & node.keys(), path
            continue
        assert "type" in node, f"{path} has no type"
        assert not forbidden & node.keys(), f"{path} uses {forbidden & node.keys()}"
        assert not ("properties" in node and "additionalProperties" in node), path
        if node["type"] == "object" and "properties" not in node and "additionalProperties" not in node:
            assert node.get("x-kubernetes-preserve-unknown-fields") or path == ".metadata", path
        if node["type"] == "array":
            assert "items" in node, path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path


def test_no_field_preserves_unknown_fields() -> None:
    """Every field has a schema (env valueFrom has core/v1 EnvVarSource's): nothing free-form reaches the
    operator unchecked."""
    preserved = [path for path, node in _walk(_schema()) if node.get("x-kubernetes-preserve-unknown-fields")]
    assert preserved == []


def test_every_field_has_a_description() -> None:
    for path, node in _walk(_schema()):
        if path.startswith((".spec", ".status")) and not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description (kubectl explain would be empty)"


def test_spec_strings_and_lists_are_bounded_for_cel_cost() -> None:
    for path, node in _walk(_schema()["properties"]["spec"], ".spec"):
        if node.get("x-kubernetes-int-or-string"):
            assert "maxLength" in node, f"{path} is an unbounded string"
            continue
        if node["type"] == "string":
            assert "maxLength" in node or "enum" in node, f"{path} is an unbounded string"
        if node["type"] == "array":
            assert "maxItems" in node, f"{path} is an unbounded list"


def test_defaults_let_the_api_server_fill_serving_and_cost() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    assert spec["serving"]["default"] == {} and spec["cost"]["default"] == {}
    assert spec["cost"]["properties"]["ceilingUSDPerMillionTokens"]["default"] == 3.0
    assert spec["cost"]["properties"]["window"]["default"] == "10m"
    assert spec["replicas"]["minimum"] == 0
    assert spec["serving"]["properties"]["kvCacheDtype"]["enum"] == ["auto", "fp8"]
    assert spec["serving"]["properties"]["speculativeDecoding"]["properties"]["method"]["enum"] == ["ngram"]
    assert spec["serving"]["properties"]["env"]["x-kubernetes-list-map-keys"] == ["name"]


def test_every_rule_is_attached_with_message_and_field_path() -> None:
    spec = _schema()["properties"]["spec"]
    attached = []
    for _, node in _walk(spec):
        attached += node.get("x-kubernetes-validations", [])
    assert len(attached) == len(RULES)
    for validation in attached:
        assert validation["message"] and validation["fieldPath"].startswith(".")


def _cel_holds(rule_cel: str, obj: Any) -> bool:
    env = celpy.Environment()
    result = env.program(env.compile(rule_cel)).evaluate({"self": celpy.json_to_cel(obj)})
    return bool(result)


CASES = [changes for _, changes, _ in BAD] + [changes for _, changes in GOOD]


@pytest.mark.parametrize("changes", CASES)
def test_cel_and_python_rules_agree(changes: dict[str, Any]) -> None:
    model = DataJaxModel.model_validate(doc_with(**changes))
    # What the API server hands to CEL: the object with its defaults applied, absent optionals left out.
    stored = model.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    for rule in RULES:
        python_obj = scope_object(model.spec, rule.scope)
        cel_obj: Any = stored
        for part in filter(None, rule.scope.split(".")):
            cel_obj = cel_obj.get(part)
        assert (python_obj is None) == (cel_obj is None)
        if python_obj is not None:
            assert _cel_holds(rule.cel, cel_obj) == rule.holds(python_obj), (
                f"{rule.name} disagrees on {changes}"
            )


def test_every_cel_rule_rejects_some_case() -> None:
    failing = set()
    for changes in CASES:
        model = DataJaxModel.model_validate(doc_with(**changes))
        failing |= {
            r.name for r in RULES if (o := scope_object(model.spec, r.scope)) is not None and not r.holds(o)
        }
    assert failing == {r.name for r in RULES}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_pass_every_cel_rule(path: Any) -> None:
    model = DataJaxModel.model_validate(yaml.safe_load(path.read_text()))
    stored = model.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    for rule in RULES:
        obj: Any = stored
        for part in filter(None, rule.scope.split(".")):
            obj = obj.get(part)
        if obj is not None:
            assert _cel_holds(rule.cel, obj), rule.name
