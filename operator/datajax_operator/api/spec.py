"""The DataJaxModel spec (DESIGN §3): what a user writes to serve one model on one TPU slice shape.

Field descriptions become the CRD's `kubectl explain` text, and the constraints here (types, enums,
ranges, patterns, lengths) become its OpenAPI validation. Rules that relate two fields live in
`api.rules`, which feeds both the CRD's CEL rules and the planner's pre-flight checks.
Lengths and list sizes are bounded so the API server can bound the cost of those CEL rules.
"""

from typing import Annotated, Literal

import durationpy
from pydantic import Field, field_validator

from datajax_operator.api.base import SpecModel
from datajax_operator.api.tpu import GENERATIONS, generation_list, topology_list

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CONFIG_KEY = r"^[-._a-zA-Z0-9]+$"
QUANTITY = r"^[1-9][0-9]{0,5}(Mi|Gi|Ti)$"
BUCKET = r"^[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9]$"

Pricing = Literal["on-demand", "spot", "cud-1y", "cud-3y"]
WeightDtype = Literal["bfloat16", "float16", "float32", "fp8", "int8", "int4"]


class SecretKeyRef(SpecModel):
    """A key of a Secret in the model's namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Name of the Secret, in the model's namespace.",
    )
    key: str = Field(
        default="hf_api_token",
        min_length=1,
        max_length=253,
        pattern=CONFIG_KEY,
        description="Key in the Secret that holds the Hugging Face token (the GKE tutorials use "
        "hf_api_token).",
    )


class EmptyDirStorage(SpecModel):
    """Node-local scratch space for the weights: fetched again whenever a pod is recreated."""

    size_limit: str | None = Field(
        default=None,
        pattern=QUANTITY,
        max_length=12,
        description="Size of the volume and the container's ephemeral-storage request (e.g. 200Gi). When "
        "unset it is sized from model.parametersBillions and model.dtype (weights plus a quarter, plus the "
        "XLA cache); without those hints it is unsized and no disk is requested (the plan warns).",
    )


class ClaimStorage(SpecModel):
    """An existing PersistentVolumeClaim in the model's namespace."""

    claim_name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Name of the PersistentVolumeClaim. Use ReadWriteMany (e.g. Filestore) when several pods "
        "(replicas or hosts) mount it.",
    )


class GCSFuseStorage(SpecModel):
    """A Cloud Storage bucket mounted through GKE's Cloud Storage FUSE CSI driver."""

    bucket_name: str = Field(
        min_length=3,
        max_length=222,
        pattern=BUCKET,
        description="Bucket name without gs:// (the CSI volume attribute bucketName). The pod's service "
        "account (serving.serviceAccountName) needs read/write access through Workload Identity.",
    )
    only_dir: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=r"^[-_.a-zA-Z0-9][-_./a-zA-Z0-9]*$",
        description="Mount only this folder of the bucket (the gcsfuse mount option only-dir).",
    )


class WeightStorage(SpecModel):
    """Where vLLM downloads the weights (--download-dir) and keeps its XLA compile cache: exactly one."""

    empty_dir: EmptyDirStorage | None = Field(
        default=None, description="A node-local emptyDir with an ephemeral-storage request (the default)."
    )
    persistent_volume_claim: ClaimStorage | None = Field(
        default=None, description="An existing PersistentVolumeClaim, shared by every pod of the model."
    )
    gcs_fuse: GCSFuseStorage | None = Field(
        default=None,
        description="A Cloud Storage bucket through the GCS FUSE CSI driver (GKE adds its sidecar when the "
        "pod carries the gke-gcsfuse/volumes annotation, which the operator sets).",
    )


class ModelSource(SpecModel):
    """Which model to serve, and optional facts about it used only by pre-flight checks."""

    name: str = Field(
        min_length=1,
        max_length=256,
        description="Hugging Face model id (e.g. meta-llama/Llama-3.1-8B-Instruct) or a gs:// path to the "
        "weights.",
    )
    served_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Model name clients send on the OpenAI API. Defaults to metadata.name.",
    )
    revision: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Hugging Face revision (branch, tag or commit) to load; the repository default when "
        "unset.",
    )
    hf_token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding a Hugging Face token for gated models; exposed to vLLM as HF_TOKEN "
        "through a secretKeyRef, never copied into the pod spec.",
    )
    max_model_len: int = Field(
        default=4096, ge=16, le=1_048_576, description="Context length in tokens (vLLM --max-model-len)."
    )
    attention_heads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Number of attention (query) heads. Hint for the pre-flight check that the "
        "tensor-parallel "
        "degree divides it.",
    )
    kv_heads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Number of key/value heads (GQA). Hint for the pre-flight check that the tensor-parallel "
        "degree divides it, or is a multiple of it (vLLM then replicates KV heads).",
    )
    num_layers: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Number of decoder layers. With kvHeads, headDim, parametersBillions and dtype, sizes "
        "the KV cache so a wave spec can suggest --kv-cache-dtype fp8 when KV memory is the bottleneck.",
    )
    head_dim: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Size of one attention head. Hint for sizing the KV cache (see numLayers).",
    )
    parameters_billions: float | None = Field(
        default=None,
        gt=0,
        le=100_000,
        description="Parameter count in billions. With dtype, the pre-flight check verifies the weights "
        "fit in "
        "the HBM of the tensor-parallel chips with room left for the KV cache.",
    )
    dtype: WeightDtype | None = Field(
        default=None,
        description="Storage type of the weights, for the HBM pre-flight check only (vLLM reads the "
        "checkpoint's "
        "own dtype).",
    )
    storage: WeightStorage | None = Field(
        default=None,
        description="Volume the weights are downloaded to (vLLM --download-dir) on every pod of a replica. "
        "Defaults to an emptyDir sized from the model, with a matching ephemeral-storage request.",
    )


Parallelism = Literal["PipelineAcrossHosts", "TensorAcrossHosts"]


class TPU(SpecModel):
    """The TPU slice one replica runs on."""

    generation: str = Field(
        description=f"TPU generation, one record of the operator's TPU catalog: {generation_list()}.",
        json_schema_extra={"enum": list(GENERATIONS)},
    )
    topology: str = Field(
        min_length=3,
        max_length=12,
        pattern=r"^[1-9][0-9]{0,2}x[1-9][0-9]{0,2}(x[1-9][0-9]{0,2})?$",
        description=f"Slice topology, the node pool's cloud.google.com/gke-tpu-topology: {topology_list()}.",
    )
    machine_type: str | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        pattern=r"^[a-z0-9-]+$",
        description="GKE machine type of the node pool. Defaults to the single-host type when the topology "
        "fits "
        "on one VM (e.g. ct6e-standard-8t for 2x4); set the 4-chip type (e.g. ct6e-standard-4t) to run 2x4 "
        "on "
        "two hosts.",
    )
    spot: bool = Field(
        default=False,
        description="Schedule on Spot TPU nodes (node selector cloud.google.com/gke-spot=true).",
    )
    reservation: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="Name of a specific Compute Engine reservation to consume "
        "(node selector cloud.google.com/reservation-name). Cannot be combined with spot.",
    )
    parallelism: Parallelism | None = Field(
        default=None,
        description="How a multi-host slice splits the model. PipelineAcrossHosts (the default): tensor "
        "parallel within each host, one pipeline stage per host (--pipeline-parallel-size = hosts), the "
        "multi-host mode tpu-inference's support matrix marks passing. TensorAcrossHosts: tensor parallel "
        "over every device of the slice (multi-host TP is untested upstream). Single-host slices ignore it.",
    )

    @field_validator("generation")
    @classmethod
    def _known_generation(cls, generation: str) -> str:
        """The CRD's enum says the same; this keeps `plan` offline as strict as the API server."""
        if generation not in GENERATIONS:
            raise ValueError(f"unknown TPU generation {generation!r}: use one of {generation_list()}")
        return generation


Axis = Literal["data", "model"]


def _default_axes() -> list[Axis]:
    return ["data", "model"]


class Mesh(SpecModel):
    """An explicit JAX device mesh; tpu-inference builds a ('data', 'model') mesh of shape (dp, tp)."""

    axes: list[Axis] = Field(
        default_factory=_default_axes,
        min_length=1,
        max_length=2,
        description="Mesh axis names, each once: data (data-parallel engines) and model (tensor parallel). "
        "An axis left out has size 1.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    shape: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        min_length=1,
        max_length=2,
        description="Size of each axis, in the order of axes. The product must equal the JAX devices of one "
        "pipeline stage: the slice's devices (chips x devices per chip), divided by the hosts when "
        "tpu.parallelism is PipelineAcrossHosts on a multi-host slice.",
    )

    @field_validator("axes")
    @classmethod
    def _axes_unique(cls, axes: list[str]) -> list[str]:
        """The CRD declares axes a set; say so here too rather than let tpu-inference fail at start."""
        if len(set(axes)) != len(axes):
            raise ValueError("each axis may appear once: use [data, model], [data] or [model]")
        return axes


class ChunkedPrefill(SpecModel):
    """Chunked prefill, always on with vLLM's TPU backend (Ragged Paged Attention)."""

    max_num_batched_tokens: int | None = Field(
        default=None,
        ge=16,
        le=1_048_576,
        description="Tokens per scheduler step (vLLM --max-num-batched-tokens). Derived from the wave spec's "
        "prompt lengths when plan.waveSpecRef is set, else vLLM's TPU default for the generation (v6e 1024, "
        "v5e 512, v5p 256; vllm/engine/arg_utils.py). Must be at least serving.maxNumSeqs.",
    )


class SpeculativeDecoding(SpecModel):
    """Speculative decoding without a draft model."""

    method: Literal["ngram"] = Field(
        description="Speculation method; ngram (prompt lookup) is the one supported."
    )
    num_speculative_tokens: int = Field(
        default=4, ge=1, le=16, description="Tokens proposed per step (num_speculative_tokens)."
    )


# The core/v1 EnvVarSource shape (k8s.io/api core/v1 types.go, v0.37.2: EnvVarSource, ObjectFieldSelector,
# ResourceFieldSelector, ConfigMapKeySelector, SecretKeySelector), so the API server refuses a wrong
# valueFrom when the model is applied rather than when the operator applies its workload. fileKeyRef
# (feature gate EnvFiles) is left out: it names a volume of the pod, and the operator's pods have none
# for it. The referent's name is required here: core/v1 lets it be empty only for backwards
# compatibility ("almost certainly wrong", types.go LocalObjectReference).


class ObjectFieldSelector(SpecModel):
    """A field of the pod (core/v1 ObjectFieldSelector)."""

    api_version: str | None = Field(
        default=None, min_length=1, max_length=64, description='Version the fieldPath is written in ("v1").'
    )
    field_path: str = Field(
        min_length=1,
        max_length=256,
        description="Path of the field, e.g. metadata.name, metadata.namespace, spec.nodeName, status.podIP; "
        "the Pod's validation decides which paths are supported.",
    )


class ResourceFieldSelector(SpecModel):
    """A resource of a container (core/v1 ResourceFieldSelector)."""

    container_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="Container whose resource is read (default: the vLLM container itself).",
    )
    resource: str = Field(
        min_length=1, max_length=128, description="Resource to select, e.g. limits.memory, requests.cpu."
    )
    divisor: int | Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None,
        description='Output format of the resource, a quantity (default "1").',
        json_schema_extra={"x-kubernetes-int-or-string": True, "maxLength": 64},
    )


class KeySelector(SpecModel):
    """A key of a ConfigMap or Secret in the model's namespace (core/v1 ConfigMapKeySelector and
    SecretKeySelector have this shape)."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the ConfigMap or Secret."
    )
    key: str = Field(min_length=1, max_length=253, pattern=CONFIG_KEY, description="Key to select.")
    optional: bool | None = Field(
        default=None, description="Whether the object or its key may be missing (the variable is then unset)."
    )


class EnvVarSource(SpecModel):
    """Where an environment variable's value comes from: exactly one source (core/v1 EnvVarSource)."""

    field_ref: ObjectFieldSelector | None = Field(default=None, description="A field of the pod.")
    resource_field_ref: ResourceFieldSelector | None = Field(
        default=None, description="A resource limit or request of a container."
    )
    config_map_key_ref: KeySelector | None = Field(default=None, description="A key of a ConfigMap.")
    secret_key_ref: KeySelector | None = Field(default=None, description="A key of a Secret.")


class EnvVar(SpecModel):
    """An environment variable for the vLLM container, in the core/v1 EnvVar shape."""

    name: str = Field(
        min_length=1, max_length=128, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", description="Variable name."
    )
    value: str | None = Field(default=None, max_length=32768, description="Literal value.")
    value_from: EnvVarSource | None = Field(
        default=None,
        description="Source of the value: one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef, "
        "as in core/v1 EnvVarSource.",
    )


class XLACache(SpecModel):
    """Where the XLA compilation cache lives when not on the weights volume (the default).

    The operator keeps it in a directory keyed by everything a compiled program depends on (image,
    topology, mesh, max model length, batch buckets), so a changed key starts a fresh cache instead of
    loading programs compiled for another shape.
    """

    claim_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="PersistentVolumeClaim for the cache. Use ReadWriteMany when several pods (replicas or "
        "hosts) share it.",
    )
    gcs_fuse: GCSFuseStorage | None = Field(
        default=None, description="A Cloud Storage bucket for the cache, through the GCS FUSE CSI driver."
    )


class Serving(SpecModel):
    """vLLM serving options."""

    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Image of the vLLM container, overriding the operator's default (the datajax runtime "
        "image "
        "when a plan is given, else the pinned vllm/vllm-tpu image).",
    )
    # No schema default for prefixCaching and kvCacheDtype: the API server would store the default and
    # the planner could no longer tell "left to the wave spec" from "set by the user".
    prefix_caching: bool | None = Field(
        default=None,
        description="Automatic prefix caching (--enable-prefix-caching / --no-enable-prefix-caching). When "
        "unset, the wave spec's prefix reuse decides; on without one.",
    )
    chunked_prefill: ChunkedPrefill = Field(
        default_factory=ChunkedPrefill,
        description="Chunked prefill settings.",
        json_schema_extra={"default": {}},
    )
    max_num_seqs: int = Field(
        default=256, ge=1, le=2048, description="Maximum concurrent sequences per engine (--max-num-seqs)."
    )
    speculative_decoding: SpeculativeDecoding | None = Field(
        default=None, description="Speculative decoding (--speculative-config); off when unset."
    )
    kv_cache_dtype: Literal["auto", "fp8"] | None = Field(
        default=None,
        description="KV cache storage type (--kv-cache-dtype): auto (model dtype) or fp8. When unset, a wave "
        "spec with model shape hints may suggest fp8; auto otherwise.",
    )
    extra_args: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        default_factory=list,
        max_length=64,
        description="Extra vLLM arguments appended to the command line. Flags the operator derives "
        "(parallelism, lengths, caching, port) are rejected: set the spec field instead.",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        description="Extra environment variables for the vLLM container. Names the operator sets "
        "(HF_TOKEN, DATAJAX_*, TPU_MULTIHOST_BACKEND, VLLM_XLA_CACHE_PATH) are rejected.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    xla_cache: XLACache | None = Field(
        default=None,
        description="Separate volume for the XLA compilation cache (VLLM_XLA_CACHE_PATH). When unset the "
        "cache lives on the weights volume (model.storage), under a directory keyed by the compiled shape.",
    )
    service_account_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Kubernetes service account of the serving pods (e.g. one bound to a Google service "
        "account through Workload Identity, which GCS FUSE storage needs). The namespace default when unset.",
    )
    startup_timeout_seconds: int = Field(
        default=2400,
        ge=60,
        le=14400,
        description="How long the startup probe waits for the first XLA compile and weight load before the "
        "container is restarted.",
    )

    @field_validator("env")
    @classmethod
    def _env_names_unique(cls, env: list[EnvVar]) -> list[EnvVar]:
        """The CRD keys env by name (server-side apply merges on it), so a name may appear once."""
        names = [e.name for e in env]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"each name may appear once; remove the duplicates of {', '.join(duplicates)}")
        return env


class ConfigMapKey(SpecModel):
    """A key of a ConfigMap in the model's namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Name of the ConfigMap, in the model's namespace.",
    )
    key: str = Field(
        default="bundle.json",
        min_length=1,
        max_length=253,
        pattern=CONFIG_KEY,
        description="Key in the ConfigMap.",
    )


class PlanRefs(SpecModel):
    """DataJAX artefacts handed to the serving pods."""

    config_map_ref: ConfigMapKey | None = Field(
        default=None,
        description="ConfigMap key holding the DataJAX plan bundle (JSON). Mounted into the pods as "
        "/etc/datajax/plan/bundle.json for the vLLM plugin to register. Use a new ConfigMap name for a new "
        "plan: "
        "that rolls the pods, while edits in place reach them only on restart.",
    )
    wave_spec_ref: ConfigMapKey | None = Field(
        default=None,
        description="ConfigMap key holding the wave-spec summary from datajax-export-wavespec. The operator "
        "reads it to derive serving defaults (prefix caching, chunk size, KV-cache dtype; explicit serving "
        "fields win) and re-reads it at every periodic pass.",
    )
    compile_gate: bool = Field(
        default=False,
        alias="compileGate",
        description="Before rendering the workload, compile the model's serving program with libtpu's "
        "TPU compiler for the planned slice and mesh, in a Job that runs the runtime image on a CPU node (no "
        "TPU is requested), and render the workload only when the per-device bytes fit the chips' HBM; the "
        "result is the CompileGate condition. Needs the shape hints spec.model.attentionHeads, kvHeads, "
        "numLayers, headDim and parametersBillions. Costs one CPU pod for the compile (about half a minute "
        "to a minute and a half of CPU per example, docs/benchmarks.md) and a pull of the runtime image; a "
        "changed plan compiles again. A workload already serving keeps serving while the gate holds.",
    )


DURATION = r"^[1-9][0-9]{0,4}(s|m|h)$"
"""A duration as the API takes it: a number and a unit s, m or h (e.g. 10m)."""


def duration_seconds(text: str) -> int:
    """Whole seconds in a duration such as `10m` or `1h30m` (the Kubernetes client's own Go-duration
    parser, durationpy); ValueError when the text is not a duration."""
    try:
        return int(durationpy.from_str(text).total_seconds())
    except durationpy.DurationError as err:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 10m, 1h)") from err


class Cost(SpecModel):
    """The cost ceiling and how cost is measured."""

    ceiling_usd_per_million_tokens: float = Field(
        default=3.0,
        gt=0,
        le=1_000_000,
        alias="ceilingUSDPerMillionTokens",
        description="Cost ceiling in US dollars per million tokens.",
    )
    basis: Literal["total", "output"] = Field(
        default="total",
        description="Tokens the cost is divided by: total (prompt + generated) or output (generated).",
    )
    pricing: Pricing | None = Field(
        default=None,
        description="Price tier of the operator's price table: on-demand, spot, cud-1y or cud-3y. Defaults "
        "to spot "
        "when tpu.spot is set, else on-demand.",
    )
    usd_per_chip_hour: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="Explicit price per chip-hour in US dollars; overrides the table.",
    )
    window: str = Field(
        default="10m",
        max_length=8,
        pattern=DURATION,
        description="Window the cost is evaluated over: a number and a unit s, m or h (e.g. 10m).",
    )
    min_tokens_per_second: float = Field(
        default=1.0,
        ge=0,
        le=1_000_000_000,
        description="Below this traffic (tokens/s) the $/token figure is not judged.",
    )
    action: Literal["Alert", "ScaleDown", "Suspend"] = Field(
        default="Alert",
        description="What happens when the ceiling is breached: Alert (condition and Event), ScaleDown "
        "(one replica fewer per window, never below 1, back to spec.replicas once the cost is under the "
        "ceiling for a window) or Suspend (replicas to 0 until the spec changes). With spec.scaling only "
        "Alert: the autoscaler keeps the cost under the ceiling itself.",
    )

    @property
    def window_seconds(self) -> int:
        return duration_seconds(self.window)


class SLO(SpecModel):
    """A latency objective."""

    p95_latency_seconds: float = Field(
        gt=0, le=3600, description="p95 end-to-end request latency objective in seconds."
    )


ScalingPolicy = Literal["PreferSLO", "PreferCost"]


class Scaling(SpecModel):
    """The operator owns the replica count: it keeps p95 under spec.slo and $/Mtok under the ceiling.

    Each observation pass it estimates demand from the sidecars, the tokens/s one slice serves at the
    SLO (learned from the slices' own load and p95, seeded by a roofline model of the TPU generation),
    and from them the band of replica counts that meets both bounds (docs/autoscaling.md).
    """

    min_replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Fewest slices the operator runs, whatever the demand. 0 allows scale-to-zero, and "
        "needs scaleToZeroAfter.",
    )
    max_replicas: int = Field(
        ge=1, le=1000, description="Most slices the operator runs, whatever the demand (a budget cap)."
    )
    policy: ScalingPolicy = Field(
        default="PreferSLO",
        description="Which bound gives when no replica count meets both the SLO and the cost ceiling, and "
        "where in the band to sit: PreferSLO runs enough slices for the SLO (the ceiling gives) with some "
        "headroom; PreferCost runs no more slices than the ceiling allows (the SLO gives) and no spare.",
    )
    scale_to_zero_after: str | None = Field(
        default=None,
        max_length=8,
        pattern=DURATION,
        description="With minReplicas 0: how long without any traffic before the model is scaled to zero "
        "slices (e.g. 30m). At zero no sidecar measures demand: `kubectl scale djm NAME --replicas=N` (or "
        "any spec change) wakes it; status.scaling.expectedColdStartSeconds says how long that takes.",
    )
    scale_down_stabilization: str = Field(
        default="5m",
        max_length=8,
        pattern=DURATION,
        description="How long the demand must stay low before slices are removed (the largest count "
        "asked for in that time is kept). Scaling up is immediate.",
    )

    @property
    def scale_to_zero_after_seconds(self) -> int | None:
        return duration_seconds(self.scale_to_zero_after) if self.scale_to_zero_after else None

    @property
    def scale_down_stabilization_seconds(self) -> int:
        return duration_seconds(self.scale_down_stabilization)


class DataJaxModelSpec(SpecModel):
    """Desired state of a model served by vLLM on a Cloud TPU slice."""

    model: ModelSource = Field(description="The model to serve.")
    tpu: TPU = Field(description="The TPU slice each replica runs on.")
    mesh: Mesh | None = Field(
        default=None,
        description="Explicit JAX mesh of one engine (one pipeline stage on a multi-host slice with "
        "tpu.parallelism PipelineAcrossHosts). Derived when unset: data=1, model=devices of the stage.",
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Slices serving this model (0 suspends serving); the scale subresource, so `kubectl "
        "scale` and a HorizontalPodAutoscaler or KEDA ScaledObject can set it. With spec.scaling the "
        "operator owns the count: a new value is where the autoscaler starts from (clamped to "
        "minReplicas..maxReplicas), e.g. to wake a model scaled to zero.",
    )
    serving: Serving = Field(
        default_factory=Serving, description="vLLM serving options.", json_schema_extra={"default": {}}
    )
    plan: PlanRefs | None = Field(default=None, description="DataJAX plan bundle and wave spec.")
    cost: Cost = Field(
        default_factory=Cost, description="Cost ceiling and measurement.", json_schema_extra={"default": {}}
    )
    slo: SLO | None = Field(default=None, description="Latency objective; no latency condition when unset.")
    scaling: Scaling | None = Field(
        default=None,
        description="Autoscaling on the SLO and the cost ceiling at once; needs spec.slo. When unset, "
        "spec.replicas (or an HPA through the scale subresource) decides, and cost.action applies.",
    )
