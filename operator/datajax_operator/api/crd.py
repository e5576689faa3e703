"""Generates the DataJaxModel CustomResourceDefinition from the typed models.

The CRD is never hand-written: `build_crd()` turns the pydantic JSON schema into a Kubernetes
structural schema (every node typed, refs inlined, nullable unions collapsed, JSON-Schema-2020 idioms
rewritten in OpenAPI v3.0 terms), adds the CEL rules of `api.rules` where they are attached, and
wraps it with names, printer columns and the status and scale subresources (the scale
subresource lets `kubectl scale`, an HPA or KEDA set spec.replicas as on a Deployment).
`crds/` holds its output.
"""

from typing import Any, Final

from datajax_operator.api.constants import GROUP, KIND, LIST_KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION
from datajax_operator.api.rules import RULES
from datajax_operator.api.spec import DataJaxModelSpec
from datajax_operator.api.status import DataJaxModelStatus

_KEPT: Final = frozenset(
    {
        "type",
        "description",
        "default",
        "enum",
        "format",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "required",
    }
)

PRINTER_COLUMNS: Final[list[dict[str, Any]]] = [
    {"name": "TPU", "type": "string", "jsonPath": ".spec.tpu.generation", "description": "TPU generation."},
    {
        "name": "Topology",
        "type": "string",
        "jsonPath": ".spec.tpu.topology",
        "description": "Slice topology.",
    },
    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "description": "Slices requested."},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Ready condition.",
    },
    {
        "name": "$/Mtok",
        "type": "number",
        "jsonPath": ".status.metrics.costUSDPerMillionTokens",
        "description": "Measured US dollars per million tokens.",
    },
    {
        "name": "P95",
        "type": "number",
        "jsonPath": ".status.metrics.p95LatencySeconds",
        "description": "p95 request latency in seconds.",
    },
    {
        "name": "PrefixHit",
        "type": "number",
        "jsonPath": ".status.metrics.prefixCacheHitRatio",
        "description": "Prefix-cache hit ratio.",
    },
    {
        "name": "Ceiling",
        "type": "number",
        "jsonPath": ".spec.cost.ceilingUSDPerMillionTokens",
        "description": "Cost ceiling in US dollars per million tokens.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """One pydantic JSON-schema node as a structural OpenAPI v3.0 node."""
    if "$ref" in node:
        target = _structural(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return _with_field_facts(target, node)
    if node.get("x-kubernetes-int-or-string"):
        # an integer or a string (a quantity): structural schemas give such a node no type
        kept = {k: v for k, v in node.items() if k in _KEPT or k.startswith("x-kubernetes-")}
        return {k: v for k, v in kept.items() if not (k == "default" and v is None)}
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"only Optional[X] unions map to a structural schema, got {node['anyOf']}")
        return _with_field_facts(_structural(branches[0], defs), node)

    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEPT or k.startswith("x-kubernetes-")}
    if out.get("default", 0) is None:
        del out["default"]
    if "const" in node:
        out["enum"] = [node["const"]]
    if "exclusiveMinimum" in node:
        out["minimum"] = node["exclusiveMinimum"]
        out["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node:
        out["maximum"] = node["exclusiveMaximum"]
        out["exclusiveMaximum"] = True
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {name: _structural(prop, defs) for name, prop in node["properties"].items()}
    elif node.get("type") == "object":
        extra = node.get("additionalProperties", True)
        if extra is True or extra == {}:
            out["x-kubernetes-preserve-unknown-fields"] = True
        else:
            out["additionalProperties"] = _structural(extra, defs)
    if "items" in node:
        out["items"] = _structural(node["items"], defs)
    if "type" not in out:
        raise ValueError(f"schema node without a type cannot be structural: {node}")
    return out


def _with_field_facts(target: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    """A referenced or unwrapped schema, with the description, default and extensions of the field using
    it."""
    merged = dict(target)
    for key, value in field.items():
        if key in ("$ref", "anyOf", "title"):
            continue
        if key == "default" and value is None:
            continue
        if key in _KEPT or key.startswith("x-kubernetes-"):
            merged[key] = value
    return merged


def model_schema(model: type[DataJaxModelSpec] | type[DataJaxModelStatus]) -> dict[str, Any]:
    """The structural schema of one API model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(raw, raw.get("$defs", {}))


def _attach_rules(spec_schema: dict[str, Any]) -> None:
    for rule in RULES:
        node = spec_schema
        for part in filter(None, rule.scope.split(".")):
            node = node["properties"][part]
        node.setdefault("x-kubernetes-validations", []).append(
            {"rule": rule.cel, "message": rule.message, "fieldPath": rule.field}
        )


def build_crd() -> dict[str, Any]:
    """The DataJaxModel CRD (apiextensions.k8s.io/v1) as a plain dict, ready to dump as YAML."""
    spec = model_schema(DataJaxModelSpec)
    _attach_rules(spec)
    status = model_schema(DataJaxModelStatus)
    root = {
        "type": "object",
        "description": "DataJaxModel serves one large language model with vLLM on Cloud TPU slices, derives "
        "the TPU placement and JAX mesh from the topology, and enforces a cost ceiling in US dollars per "
        "million tokens.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "API version of this object: datajax.dev/v1alpha1.",
            },
            "kind": {"type": "string", "description": "Kind of this object: DataJaxModel."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {
                "app.kubernetes.io/name": "datajax-operator",
                "app.kubernetes.io/part-of": "datajax-operator",
            },
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": LIST_KIND,
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
                "categories": ["datajax"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }
