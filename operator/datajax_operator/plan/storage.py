"""Where the weights and the XLA compile cache go: the volume kind, its size and the keyed cache path.

Without a volume vLLM downloads the weights to the container's root filesystem on every host: a 70B
bf16 checkpoint is ~141 GB per host and GKE's default boot disk is 100 GB. GKE's reference TPU
manifests put `--download-dir` and `VLLM_XLA_CACHE_PATH` on a volume
(GoogleCloudPlatform/kubernetes-engine-samples `ai-ml/`). `model.storage` picks one of three kinds:

- emptyDir (default): node-local, sized from the model, with a matching `ephemeral-storage` request so
  the scheduler only picks a node with that much local disk; it survives container restarts (so does
  the compile cache on it) but not a new pod;
- persistentVolumeClaim: an existing claim shared by the model's pods;
- gcsFuse: a bucket through GKE's Cloud Storage FUSE CSI driver (see `render.storage`).

The XLA cache (`VLLM_XLA_CACHE_PATH`, which tpu-inference hands to JAX as its compilation cache
directory, `tpu_inference/runner/compilation_manager.py`) lives on the weights volume unless
`serving.xlaCache` names its own, in a directory keyed by everything a compiled program depends on,
so pods of one shape share programs and a new shape never loads programs compiled for another.
"""

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Final, Literal

from datajax_operator.api.resource import DataJaxModel
from datajax_operator.plan.catalog import Placement
from datajax_operator.plan.checks import weight_bytes
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.mesh import MeshPlan
from datajax_operator.plan.problems import Problem

StorageKind = Literal["emptyDir", "persistentVolumeClaim", "gcsFuse"]

WEIGHTS_DIR: Final = "/var/lib/datajax/weights"
"""Mount point of the weights volume in every serving pod."""
DOWNLOAD_DIR: Final = f"{WEIGHTS_DIR}/hf"
"""vLLM --download-dir."""
XLA_CACHE_MOUNT: Final = "/var/cache/datajax-xla"
"""Mount point of a separate cache volume (serving.xlaCache)."""
XLA_CACHE_HEADROOM_GI: Final = 10
"""Room for compiled programs next to the weights (a few GiB per shape; an estimate, not measured)."""
WEIGHTS_MARGIN: Final = 1.25
"""Checkpoint files exceed parameters x bytes (embeddings, tokenizer, headers, partial downloads)."""


def serving_image(model: DataJaxModel, config: OperatorConfig) -> str:
    """The spec's image, else the runtime image when a plan bundle needs its plugin, else pinned vLLM TPU."""
    spec = model.spec
    if spec.serving.image is not None:
        return spec.serving.image
    if spec.plan is not None and spec.plan.config_map_ref is not None:
        return config.runtime_image
    return config.vllm_image


@dataclass(frozen=True)
class StoragePlan:
    """The weights volume and the compile cache directory of every pod of a replica."""

    kind: StorageKind
    size_gi: int | None
    """emptyDir size and ephemeral-storage request; None for a claim or a bucket, or an emptyDir the
    spec gives no size hints for (then unbounded, with a warning)."""
    download_dir: str
    xla_cache_dir: str
    xla_cache_key: str
    xla_cache_volume: Literal["weights", "persistentVolumeClaim", "gcsFuse"]

    def to_json(self) -> dict[str, object]:
        """The `storage` object of `datajax-operator plan -o json`."""
        return {
            "kind": self.kind,
            "sizeGi": self.size_gi,
            "downloadDir": self.download_dir,
            "xlaCache": {
                "volume": self.xla_cache_volume,
                "path": self.xla_cache_dir,
                "key": self.xla_cache_key,
            },
        }


def _gi(quantity: str) -> int:
    number, unit = int(quantity[:-2]), quantity[-2:]
    return {"Mi": math.ceil(number / 1024), "Gi": number, "Ti": number * 1024}[unit]


def weights_size_gi(model: DataJaxModel) -> int | None:
    """The emptyDir size in GiB: the spec's sizeLimit, else weights x 1.25 + cache headroom; None when
    the spec says neither (a guessed size would either not hold the checkpoint or, above the node's
    disk, keep the pod Pending: GKE's default boot disk is 100 GB)."""
    m = model.spec.model
    if m.storage is not None and m.storage.empty_dir is not None and m.storage.empty_dir.size_limit:
        return _gi(m.storage.empty_dir.size_limit)
    weights = weight_bytes(m)
    if weights is None:
        return None
    return math.ceil(weights * WEIGHTS_MARGIN / 2**30) + XLA_CACHE_HEADROOM_GI


def storage_kind(model: DataJaxModel) -> StorageKind:
    storage = model.spec.model.storage
    if storage is not None and storage.persistent_volume_claim is not None:
        return "persistentVolumeClaim"
    if storage is not None and storage.gcs_fuse is not None:
        return "gcsFuse"
    return "emptyDir"


def xla_cache_key(
    image: str, placement: Placement, mesh: MeshPlan, model_name: str, args: dict[str, str]
) -> str:
    """A short hash of what a compiled XLA program depends on.

    The image pins vLLM, tpu-inference, JAX and libtpu together; the slice, the parallel degrees, the
    model, its length and the token/sequence buckets fix the shapes tpu-inference precompiles. Any change
    gives a new directory, so a stale program is never loaded and the old directory is left as it was.
    """
    key = {
        "image": image,
        "generation": placement.generation,
        "topology": placement.topology,
        "machineType": placement.machine_type,
        "tp": mesh.tensor_parallel,
        "dp": mesh.data_parallel,
        "pp": mesh.pipeline_parallel,
        "model": model_name,
        **{flag: args.get(flag) for flag in _CACHE_FLAGS},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


_CACHE_FLAGS: Final = (
    "--max-model-len",
    "--max-num-batched-tokens",
    "--max-num-seqs",
    "--kv-cache-dtype",
    "--revision",
    "--speculative-config",
)


def storage_warnings(model: DataJaxModel, storage: StoragePlan) -> list[Problem]:
    """An emptyDir the plan cannot size is served, but without a disk request: say so."""
    if storage.kind != "emptyDir" or storage.size_gi is not None:
        return []
    return [
        Problem(
            "spec.model.storage",
            "the weights' emptyDir has no size: without model.parametersBillions and model.dtype (or "
            "model.storage.emptyDir.sizeLimit) no ephemeral-storage is requested, so a pod can land on a "
            "node whose disk cannot hold the checkpoint",
            severity="warning",
        )
    ]


def plan_storage(
    model: DataJaxModel, config: OperatorConfig, placement: Placement, mesh: MeshPlan, vllm_args: list[str]
) -> StoragePlan:
    """The storage of every pod of the model, from the spec and the planned vLLM command line."""
    kind = storage_kind(model)
    cache = model.spec.serving.xla_cache
    cache_volume: Literal["weights", "persistentVolumeClaim", "gcsFuse"] = "weights"
    if cache is not None and cache.claim_name is not None:
        cache_volume = "persistentVolumeClaim"
    elif cache is not None and cache.gcs_fuse is not None:
        cache_volume = "gcsFuse"
    args = dict(a.split("=", 1) for a in vllm_args if a.startswith("--") and "=" in a)
    key = xla_cache_key(serving_image(model, config), placement, mesh, vllm_args[0], args)
    root = f"{WEIGHTS_DIR}/xla-cache" if cache_volume == "weights" else XLA_CACHE_MOUNT
    return StoragePlan(
        kind=kind,
        size_gi=weights_size_gi(model) if kind == "emptyDir" else None,
        download_dir=DOWNLOAD_DIR,
        xla_cache_dir=f"{root}/{key}",
        xla_cache_key=key,
        xla_cache_volume=cache_volume,
    )
