"""Hypothesis strategies for DataJaxModel objects, driven by the generated CRD's own schema.

An object is a valid seed with a few mutations; a mutation picks a path in the schema (or a field the
schema does not know) and puts there a value the schema allows, a boundary just outside it, a hostile
string, junk of another type, or nothing at all. Driven by the schema, the fuzz covers every field the
API grows without being edited; seeded from valid objects, plenty of them pass admission and reach
the planner and the operator.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from datajax_operator.api.crd import build_crd

SPEC_SCHEMA: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
    "spec"
]

HOSTILE_STRINGS = (
    "--foo; rm -rf /",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    '"; touch /tmp/pwned; echo "',
    "'; touch /tmp/pwned; '",
    "--x=$(id)\ntouch /tmp/pwned",
    "a\nb\r\nc",
    "${IFS}touch${IFS}/tmp/pwned",
    "&& touch /tmp/pwned",
    "| touch /tmp/pwned",
    "--tensor_parallel_size=3",
    "--tensor-parallel-size=3",
    "-tp",
    "--host=0.0.0.0",
    "模型/通义千问",
    "\u202etxt.exe",
    "🙂" * 40,
    "\\",
    "%s%n%x",
    "{{ .Values.secret }}",
    "../../../../etc/passwd",
    "x" * 1024,
    "x" * 1025,
    "y" * 40000,
    "\t",
    " ",
    "-",
    "*",
    "&a [*a, *a]",
    "null",
    "0",
)

JUNK: tuple[Any, ...] = (None, "", 0, -1, 1.5, -0.0, True, [], {}, [None], {"a": [1, {"b": None}]}, "x" * 300)

VALID_VALUE_FROM = (
    {"secretKeyRef": {"name": "s", "key": "k"}},
    {"configMapKeyRef": {"name": "c", "key": "k", "optional": True}},
    {"fieldRef": {"fieldPath": "metadata.name"}},
    {"resourceFieldRef": {"containerName": "vllm", "resource": "limits.memory"}},
)

SEEDS: tuple[dict[str, Any], ...] = (
    {"model": {"name": "org/m"}, "tpu": {"generation": "v6e", "topology": "2x4"}},
    {"model": {"name": "Qwen/Qwen2.5-1.5B-Instruct"}, "tpu": {"generation": "v5e", "topology": "1x1"}},
    {
        "model": {"name": "meta-llama/Llama-3.1-70B-Instruct", "attentionHeads": 64, "kvHeads": 8},
        "tpu": {"generation": "v6e", "topology": "4x4"},
        "replicas": 2,
        "cost": {"ceilingUSDPerMillionTokens": 5, "action": "ScaleDown"},
    },
    {
        "model": {"name": "gs://bucket/model", "hfTokenSecretRef": {"name": "hf", "key": "token"}},
        "tpu": {"generation": "v5e", "topology": "2x2", "spot": True},
        "serving": {"extraArgs": ["--seed", "1"], "env": [{"name": "A", "value": "1"}]},
        "slo": {"p95LatencySeconds": 2},
    },
    # Accepted, then refused by the planner: 70B parameters do not fit 8 v5e chips.
    {
        "model": {"name": "org/huge", "parametersBillions": 70, "dtype": "bfloat16"},
        "tpu": {"generation": "v5e", "topology": "2x4"},
    },
    # Accepted (the CRD checks valueFrom's shape, the Pod its fieldPath), then refused by the API server
    # in the Deployment: a field of the pod that env cannot read.
    {
        "model": {"name": "org/m"},
        "tpu": {"generation": "v6e", "topology": "1x1"},
        "serving": {"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}]},
    },
)

REALISTIC_STRINGS = ("org/m", "meta-llama/Llama-3.1-8B-Instruct", "gs://b/m", "my-model", "hf", "token")
LONG_NAMES = ("a" * 63, "a" * 64, "m" + "-x" * 60, "a" * 253, "a" * 254)
BAD_NAMES = ("Upper", "under_score", "unicodé", "-lead", "trail-", "dot.ted", "a..b", "", "ok" + "\n")


def _string(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    options: list[st.SearchStrategy[Any]] = [st.sampled_from(HOSTILE_STRINGS)]
    if "enum" in schema:
        options += [st.sampled_from(schema["enum"])] * 3
    elif "pattern" in schema:
        options += [st.from_regex(schema["pattern"], fullmatch=True)] * 2
        options.append(st.sampled_from(REALISTIC_STRINGS))
    else:
        options += [st.sampled_from(REALISTIC_STRINGS), st.text(max_size=40)]
    return st.one_of(options)


def _number(schema: dict[str, Any], integer: bool) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    edges = [v for v in (low, high) if v is not None]
    edges += [e - 1 for e in edges] + [e + 1 for e in edges]
    inside = (
        st.integers(min_value=low, max_value=high)
        if integer
        else st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    )
    anything = st.integers() if integer else st.floats(allow_nan=False, allow_infinity=False)
    return st.one_of(inside, inside, st.sampled_from(edges or [0]), anything)


def value_for(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """A value for a node of the schema: mostly of its type, sometimes junk."""
    kind = schema.get("type")
    typed: st.SearchStrategy[Any]
    if kind == "string":
        typed = _string(schema)
    elif kind in ("integer", "number"):
        typed = _number(schema, kind == "integer")
    elif kind == "boolean":
        typed = st.booleans()
    elif kind == "array":
        typed = st.lists(
            value_for(schema["items"], depth + 1), max_size=min(schema.get("maxItems", 4) + 1, 5)
        )
    elif kind == "object" and "properties" not in schema:
        typed = st.one_of(
            st.sampled_from(VALID_VALUE_FROM),
            st.dictionaries(st.text(max_size=12), st.sampled_from(JUNK), max_size=3),
        )
    elif kind == "object" and depth < 3:
        props = schema["properties"]
        required = set(schema.get("required", []))
        typed = st.fixed_dictionaries(
            {k: value_for(v, depth + 1) for k, v in props.items() if k in required},
            optional={k: value_for(v, depth + 1) for k, v in props.items() if k not in required},
        )
    else:
        typed = st.just({})
    return st.one_of(typed, typed, typed, st.sampled_from(JUNK))


@st.composite
def mutation(draw: st.DrawFn) -> tuple[list[str], Any]:
    """A path below spec and what to put there (``...`` removes the field)."""
    schema, path = SPEC_SCHEMA, []
    while schema.get("type") == "object" and "properties" in schema:
        if path and draw(st.integers(0, 3)) == 0:
            break
        if draw(st.integers(0, 15)) == 0:
            path.append(draw(st.sampled_from(["topolgy", "extra", "Name", "x-y", "üñí"])))
            return path, draw(st.sampled_from(JUNK))
        key = draw(st.sampled_from(sorted(schema["properties"])))
        path.append(key)
        schema = schema["properties"][key]
    if draw(st.integers(0, 9)) == 0:
        return path, ...
    return path, draw(value_for(schema))


def _apply(spec: dict[str, Any], path: list[str], value: Any) -> None:
    node = spec
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if value is ...:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


@st.composite
def model_spec(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A spec (seed plus 0-4 mutations) and the dotted paths mutated."""
    spec = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    paths = []
    for path, value in draw(st.lists(mutation(), max_size=4)):
        _apply(spec, path, value)
        paths.append(".".join(["spec", *path]))
    return spec, paths


def model_name() -> st.SearchStrategy[str]:
    """Mostly a plain name (the fuzz is about the spec), one in five long, invalid or hostile."""
    odd = st.sampled_from(LONG_NAMES + BAD_NAMES + HOSTILE_STRINGS)
    return st.integers(0, 4).flatmap(lambda n: odd if n == 0 else st.just("fz"))
