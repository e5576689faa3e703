"""Cross-field rules that can be checked on a DataJaxModel alone, written once for two evaluators.

Each rule carries a CEL expression (emitted into the CRD as `x-kubernetes-validations`, so the API
server rejects the object at admission) and the same predicate in Python (run by the planner's
pre-flight checks, so `datajax-operator plan` and the operator report the same problems offline).
Rules are attached to the smallest object that holds every field they read, which keeps each CEL
evaluation cheap. A test evaluates both forms on bad inputs and requires them to agree.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from datajax_operator.api.spec import TPU, DataJaxModelSpec, EnvVarSource, Mesh, ModelSource, Scaling, Serving
from datajax_operator.api.tpu import CATALOG, SLICE_SHAPES, slice_devices, topology_chips

MANAGED_VLLM_FLAGS: Final = (
    "--model",
    "--served-model-name",
    "--host",
    "--port",
    "--tensor-parallel-size",
    "-tp",
    "--data-parallel-size",
    "-dp",
    "--max-model-len",
    "--max-num-batched-tokens",
    "--max-num-seqs",
    "--enable-prefix-caching",
    "--no-enable-prefix-caching",
    "--enable-chunked-prefill",
    "--speculative-config",
    "--kv-cache-dtype",
    "--revision",
    "--distributed-executor-backend",
    "--pipeline-parallel-size",
    "-pp",
    "--download-dir",
)
"""vLLM flags the operator derives from the spec; extraArgs may not set them a second time."""

RESERVED_ENV: Final = (
    "HF_TOKEN",
    "DATAJAX_PLAN_BUNDLE",
    "DATAJAX_PLAN_STATUS",
    "DATAJAX_EXPECTED_PLACEMENT",
    "TPU_MULTIHOST_BACKEND",
    "VLLM_XLA_CACHE_PATH",
)
"""Environment variables the operator sets; serving.env may not override them."""


@dataclass(frozen=True)
class Rule:
    """One rule: where it is attached, its CEL form, its Python form, and what to tell the user."""

    name: str
    scope: str
    """Dotted path below spec of the object the rule is attached to ('' is spec itself)."""
    field: str
    """Path of the offending field relative to scope, in CEL fieldPath form (starts with '.')."""
    cel: str
    message: str
    holds: Callable[[Any], bool]

    @property
    def path(self) -> str:
        """The field's full dotted path, as reported by the planner (e.g. spec.tpu.topology)."""
        scope = f".{self.scope}" if self.scope else ""
        return f"spec{scope}{self.field}"


def _cel(value: object) -> str:
    """A Python literal (str, int, list, dict) as a CEL literal; JSON syntax is valid CEL for these."""
    return json.dumps(value, separators=(",", ":")).replace('"', "'")


_TOPOLOGIES_BY_GEN: Final = {gen: list(shapes) for gen, shapes in SLICE_SHAPES.items()}
_SHAPE_KEYS: Final = [f"{gen}/{t}" for gen, shapes in SLICE_SHAPES.items() for t in shapes]
_MACHINE_KEYS: Final = [
    f"{gen}/{t}/{m}" for gen, shapes in SLICE_SHAPES.items() for t, ms in shapes.items() for m in ms
]
_DEVICES: Final = {
    f"{gen}/{t}": slice_devices(gen, t) for gen, shapes in SLICE_SHAPES.items() for t in shapes
}
"""generation/topology -> JAX devices of the slice (chips x devices per chip)."""
_HOSTS: Final = {
    **{
        f"{gen}/{t}": topology_chips(t) // CATALOG[gen].machine_types[ms[0]]
        for gen, shapes in SLICE_SHAPES.items()
        for t, ms in shapes.items()
    },
    **{
        f"{gen}/{t}/{m}": topology_chips(t) // CATALOG[gen].machine_types[m]
        for gen, shapes in SLICE_SHAPES.items()
        for t, ms in shapes.items()
        for m in ms
    },
}
"""generation/topology (default machine type) and generation/topology/machineType -> hosts (VMs)."""


def _topology_message() -> str:
    offered = "; ".join(f"{gen} takes {', '.join(shapes)}" for gen, shapes in _TOPOLOGIES_BY_GEN.items())
    return f"topology is not a slice shape of this TPU generation: {offered}"


def _topology_legal(tpu: TPU) -> bool:
    return tpu.topology in SLICE_SHAPES[tpu.generation]


def _machine_type_legal(tpu: TPU) -> bool:
    shapes = SLICE_SHAPES[tpu.generation]
    return tpu.machine_type is None or tpu.topology not in shapes or tpu.machine_type in shapes[tpu.topology]


def _kv_heads_divide(model: ModelSource) -> bool:
    if model.attention_heads is None or model.kv_heads is None:
        return True
    return model.attention_heads % model.kv_heads == 0


def _mesh_shape_matches_axes(mesh: Mesh) -> bool:
    return len(mesh.axes) == len(mesh.shape)


def pipeline_stages(tpu: TPU) -> int | None:
    """Pipeline stages of a slice: its hosts under PipelineAcrossHosts (the default), else 1.

    None when the (generation, topology, machine type) is not a slice the catalog knows.
    """
    key = f"{tpu.generation}/{tpu.topology}" + (f"/{tpu.machine_type}" if tpu.machine_type else "")
    if key not in _HOSTS:
        return None
    return 1 if tpu.parallelism == "TensorAcrossHosts" else _HOSTS[key]


def _mesh_product_is_stage_devices(spec: DataJaxModelSpec) -> bool:
    devices = _DEVICES.get(f"{spec.tpu.generation}/{spec.tpu.topology}")
    stages = pipeline_stages(spec.tpu)
    if spec.mesh is None or devices is None or stages is None or not spec.mesh.shape:
        return True
    product = 1
    for size in spec.mesh.shape:
        product *= size
    return product * stages == devices


def _one_storage(model: ModelSource) -> bool:
    storage = model.storage
    if storage is None:
        return True
    chosen = (storage.empty_dir, storage.persistent_volume_claim, storage.gcs_fuse)
    return sum(x is not None for x in chosen) <= 1


def _one_cache_volume(serving: Serving) -> bool:
    cache = serving.xla_cache
    return cache is None or cache.claim_name is None or cache.gcs_fuse is None


def _spot_pricing_consistent(spec: DataJaxModelSpec) -> bool:
    return spec.cost.pricing is None or (spec.cost.pricing == "spot") == spec.tpu.spot


def _no_managed_flags(serving: Serving) -> bool:
    return not any(
        arg == f or arg.startswith(f"{f}=") for arg in serving.extra_args for f in MANAGED_VLLM_FLAGS
    )


def _no_reserved_env(serving: Serving) -> bool:
    return not any(e.name in RESERVED_ENV for e in serving.env)


def _env_single_source(serving: Serving) -> bool:
    return not any(e.value is not None and e.value_from is not None for e in serving.env)


VALUE_FROM_SOURCES: Final = tuple(str(f.alias) for f in EnvVarSource.model_fields.values())
"""The sources of an env valueFrom (core/v1 EnvVarSource's fields as `api.spec` declares them)."""


def _env_value_from_one_source(serving: Serving) -> bool:
    sources = (e.value_from.model_dump(exclude_none=True) for e in serving.env if e.value_from is not None)
    return all(len(chosen) == 1 for chosen in sources)


def _batch_holds_seqs(serving: Serving) -> bool:
    tokens = serving.chunked_prefill.max_num_batched_tokens
    return tokens is None or tokens >= serving.max_num_seqs


def _scaling_band_ordered(scaling: Scaling) -> bool:
    return scaling.min_replicas <= scaling.max_replicas


def _zero_asked_with_delay(scaling: Scaling) -> bool:
    return scaling.min_replicas > 0 or scaling.scale_to_zero_after is not None


def _scaling_has_slo(spec: DataJaxModelSpec) -> bool:
    return spec.scaling is None or spec.slo is not None


def _gate_has_shapes(spec: DataJaxModelSpec) -> bool:
    m = spec.model
    gated = spec.plan is not None and spec.plan.compile_gate
    return not gated or None not in (
        m.attention_heads,
        m.kv_heads,
        m.num_layers,
        m.head_dim,
        m.parameters_billions,
    )


def _scaling_has_size(spec: DataJaxModelSpec) -> bool:
    return spec.scaling is None or (
        spec.model.parameters_billions is not None and spec.model.dtype is not None
    )


def _scaling_alert_only(spec: DataJaxModelSpec) -> bool:
    return spec.scaling is None or spec.cost.action == "Alert"


RULES: Final[tuple[Rule, ...]] = (
    Rule(
        name="topology-legal",
        scope="tpu",
        field=".topology",
        cel=f"!(self.generation in {_cel(_TOPOLOGIES_BY_GEN)}) || "
        f"self.topology in {_cel(_TOPOLOGIES_BY_GEN)}[self.generation]",
        message=_topology_message(),
        holds=_topology_legal,
    ),
    Rule(
        name="machine-type-legal",
        scope="tpu",
        field=".machineType",
        # Flat "generation/topology[/machineType]" lists: the API server's CEL cost estimate of the
        # equivalent nested map literal exceeds the CRD budget 100-fold and the CRD is refused.
        cel="!has(self.machineType) || "
        f"!((self.generation + '/' + self.topology) in {_cel(_SHAPE_KEYS)}) || "
        f"(self.generation + '/' + self.topology + '/' + self.machineType) in {_cel(_MACHINE_KEYS)}",
        message="machineType does not host this generation and topology: leave it unset for the default, "
        "or use "
        "the 4-chip type (e.g. ct6e-standard-4t) to run 2x4 on two hosts",
        holds=_machine_type_legal,
    ),
    Rule(
        name="spot-without-reservation",
        scope="tpu",
        field=".reservation",
        cel="!(has(self.spot) && self.spot && has(self.reservation))",
        message="Spot VMs cannot consume a reservation: set spot to false or remove reservation",
        holds=lambda tpu: not (tpu.spot and tpu.reservation is not None),
    ),
    Rule(
        name="kv-heads-divide-heads",
        scope="model",
        field=".kvHeads",
        cel="!has(self.attentionHeads) || !has(self.kvHeads) || self.attentionHeads % self.kvHeads == 0",
        message="kvHeads must divide attentionHeads (each KV head serves a whole group of query heads): "
        "check both against the model's config.json",
        holds=_kv_heads_divide,
    ),
    Rule(
        name="mesh-axes-match-shape",
        scope="mesh",
        field=".shape",
        cel="!has(self.axes) || self.axes.size() == self.shape.size()",
        message="mesh.shape needs one size per entry of mesh.axes, e.g. axes [data, model] with shape [1, 8]",
        holds=_mesh_shape_matches_axes,
    ),
    Rule(
        name="mesh-product-is-stage-devices",
        scope="",
        field=".mesh.shape",
        # Multiplying by the stage count avoids CEL integer division; both maps are flat string-keyed
        # literals, which keeps the API server's cost estimate within the CRD budget.
        cel="!has(self.mesh) || self.mesh.shape.size() == 0 || "
        f"!((self.tpu.generation + '/' + self.tpu.topology) in {_cel(_DEVICES)}) || "
        "!((has(self.tpu.machineType) ? self.tpu.generation + '/' + self.tpu.topology + '/' + "
        f"self.tpu.machineType : self.tpu.generation + '/' + self.tpu.topology) in {_cel(_HOSTS)}) || "
        "(self.mesh.shape.size() == 1 ? self.mesh.shape[0] : self.mesh.shape[0] * self.mesh.shape[1]) * "
        "((has(self.tpu.parallelism) && self.tpu.parallelism == 'TensorAcrossHosts') ? 1 : "
        f"{_cel(_HOSTS)}[has(self.tpu.machineType) ? self.tpu.generation + '/' + self.tpu.topology + '/' + "
        "self.tpu.machineType : self.tpu.generation + '/' + self.tpu.topology]) == "
        f"{_cel(_DEVICES)}[self.tpu.generation + '/' + self.tpu.topology]",
        message="the product of mesh.shape must equal the JAX devices of one pipeline stage: chips x devices "
        "per chip (2 on tpu7x), divided by the hosts when a multi-host slice runs PipelineAcrossHosts (e.g. "
        "v6e 2x4 has 8 devices: shape [1, 8] or [2, 4]; v6e 4x4 on 4 hosts: [1, 4]); or remove mesh",
        holds=_mesh_product_is_stage_devices,
    ),
    Rule(
        name="one-weight-storage",
        scope="model",
        field=".storage",
        cel="!has(self.storage) || [has(self.storage.emptyDir), has(self.storage.persistentVolumeClaim), "
        "has(self.storage.gcsFuse)].filter(x, x).size() <= 1",
        message="model.storage takes one of emptyDir, persistentVolumeClaim or gcsFuse",
        holds=_one_storage,
    ),
    Rule(
        name="one-cache-volume",
        scope="serving",
        field=".xlaCache",
        cel="!has(self.xlaCache) || !(has(self.xlaCache.claimName) && has(self.xlaCache.gcsFuse))",
        message="serving.xlaCache takes claimName or gcsFuse, not both (or remove it to keep the cache on "
        "the weights volume)",
        holds=_one_cache_volume,
    ),
    Rule(
        name="spot-pricing-matches-nodes",
        scope="",
        field=".cost.pricing",
        cel="!has(self.cost) || !has(self.cost.pricing) || "
        "((self.cost.pricing == 'spot') == (has(self.tpu.spot) && self.tpu.spot))",
        message="cost.pricing spot is the price of Spot nodes only: use it exactly when tpu.spot is true, or "
        "leave pricing unset to follow tpu.spot",
        holds=_spot_pricing_consistent,
    ),
    Rule(
        name="extra-args-not-managed",
        scope="serving",
        field=".extraArgs",
        cel=f"!has(self.extraArgs) || self.extraArgs.all(a, !{_cel(list(MANAGED_VLLM_FLAGS))}"
        ".exists(f, a == f || a.startsWith(f + '=')))",
        message=f"extraArgs may not set flags the operator derives ({', '.join(MANAGED_VLLM_FLAGS)}): set "
        "the "
        "matching spec field (mesh, tpu.parallelism, model.maxModelLen, model.storage, serving.*) instead",
        holds=_no_managed_flags,
    ),
    Rule(
        name="env-not-reserved",
        scope="serving",
        field=".env",
        cel=f"!has(self.env) || self.env.all(e, !(e.name in {_cel(list(RESERVED_ENV))}))",
        message=f"env may not set {', '.join(RESERVED_ENV)}: the operator sets them (the HF token comes from "
        "model.hfTokenSecretRef, the XLA cache from serving.xlaCache)",
        holds=_no_reserved_env,
    ),
    Rule(
        name="env-single-source",
        scope="serving",
        field=".env",
        cel="!has(self.env) || self.env.all(e, !(has(e.value) && has(e.valueFrom)))",
        message="an env entry takes value or valueFrom, not both",
        holds=_env_single_source,
    ),
    Rule(
        name="env-value-from-one-source",
        scope="serving",
        field=".env",
        cel="!has(self.env) || self.env.all(e, !has(e.valueFrom) || ["
        + ", ".join(f"has(e.valueFrom.{s})" for s in VALUE_FROM_SOURCES)
        + "].filter(x, x).size() == 1)",
        message=f"an env valueFrom takes exactly one of {', '.join(VALUE_FROM_SOURCES)}",
        holds=_env_value_from_one_source,
    ),
    Rule(
        name="batch-holds-seqs",
        scope="serving",
        field=".chunkedPrefill.maxNumBatchedTokens",
        cel="!has(self.chunkedPrefill) || !has(self.chunkedPrefill.maxNumBatchedTokens) || "
        "self.chunkedPrefill.maxNumBatchedTokens >= self.maxNumSeqs",
        message="chunkedPrefill.maxNumBatchedTokens must be at least maxNumSeqs (vLLM schedules one token "
        "per "
        "sequence per step): raise it or lower maxNumSeqs",
        holds=_batch_holds_seqs,
    ),
    Rule(
        name="scaling-min-at-most-max",
        scope="scaling",
        field=".minReplicas",
        cel="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
        message="minReplicas must be at most maxReplicas: raise maxReplicas or lower minReplicas",
        holds=_scaling_band_ordered,
    ),
    Rule(
        name="scaling-zero-needs-delay",
        scope="scaling",
        field=".minReplicas",
        cel="!has(self.minReplicas) || self.minReplicas > 0 || has(self.scaleToZeroAfter)",
        message="minReplicas 0 lets the model scale to zero: set scaleToZeroAfter (how long without "
        "traffic first, e.g. 30m), or set minReplicas to 1",
        holds=_zero_asked_with_delay,
    ),
    Rule(
        name="scaling-needs-slo",
        scope="",
        field=".scaling",
        cel="!has(self.scaling) || has(self.slo)",
        message="spec.scaling keeps p95 under spec.slo.p95LatencySeconds and $/Mtok under the ceiling: "
        "set slo.p95LatencySeconds, or remove scaling",
        holds=_scaling_has_slo,
    ),
    Rule(
        name="scaling-needs-model-size",
        scope="",
        field=".model.parametersBillions",
        cel="!has(self.scaling) || (has(self.model.parametersBillions) && has(self.model.dtype))",
        message="spec.scaling seeds a slice's capacity from the roofline of the model's size: set "
        "model.parametersBillions and model.dtype",
        holds=_scaling_has_size,
    ),
    Rule(
        name="compile-gate-needs-shapes",
        scope="",
        field=".plan.compileGate",
        cel="!has(self.plan) || !has(self.plan.compileGate) || !self.plan.compileGate || ("
        "has(self.model.attentionHeads) && has(self.model.kvHeads) && has(self.model.numLayers) && "
        "has(self.model.headDim) && has(self.model.parametersBillions))",
        message="compileGate compiles the model at its real size from its shapes: set model.attentionHeads, "
        "model.kvHeads, model.numLayers, model.headDim and model.parametersBillions, or set compileGate "
        "to false",
        holds=_gate_has_shapes,
    ),
    Rule(
        name="scaling-owns-replicas",
        scope="",
        field=".cost.action",
        cel="!has(self.scaling) || !has(self.cost) || !has(self.cost.action) || self.cost.action == 'Alert'",
        message="with spec.scaling the autoscaler owns the replica count and keeps the cost under the "
        "ceiling: set cost.action to Alert (ScaleDown and Suspend are for models without scaling)",
        holds=_scaling_alert_only,
    ),
)


def scope_object(spec: DataJaxModelSpec, scope: str) -> object | None:
    """The object a rule is attached to, or None when that optional part of the spec is absent."""
    obj: object | None = spec
    for part in filter(None, scope.split(".")):
        obj = getattr(obj, part, None)
    return obj


def broken_rules(spec: DataJaxModelSpec) -> list[Rule]:
    """Every rule the spec breaks, in declaration order."""
    broken = []
    for rule in RULES:
        obj = scope_object(spec, rule.scope)
        if obj is not None and not rule.holds(obj):
            broken.append(rule)
    return broken
