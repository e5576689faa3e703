"""The weights and XLA cache volumes of a serving pod, from the plan's storage (`plan.storage`).

GCS buckets go through GKE's Cloud Storage FUSE CSI driver, set up as GKE's own vLLM-on-TPU manifest
does (GoogleCloudPlatform/kubernetes-engine-samples `ai-ml/vllm-tpu/vllm-llama3-70b.yaml`): the pod
annotation `gke-gcsfuse/volumes: "true"` makes GKE inject the FUSE sidecar, with its CPU, memory and
ephemeral-storage limits lifted (`"0"`); the inline CSI volume names the driver
`gcsfuse.csi.storage.gke.io` with the volume attributes `bucketName` and `mountOptions` (implicit
directories and a parallel-download file cache for the checkpoint); and a memory-backed emptyDir named
`gke-gcsfuse-cache` holds that file cache instead of the node's boot disk. Every pod of a slice mounts
the same volumes: each host loads its own share of the weights and compiles its own programs.
"""

from typing import Any, Final

from datajax_operator.api.resource import DataJaxModel
from datajax_operator.api.spec import GCSFuseStorage
from datajax_operator.plan.planner import Plan
from datajax_operator.plan.storage import WEIGHTS_DIR, XLA_CACHE_MOUNT

WEIGHTS_VOLUME: Final = "weights"
XLA_CACHE_VOLUME: Final = "xla-cache"
GCSFUSE_DRIVER: Final = "gcsfuse.csi.storage.gke.io"
GCSFUSE_ANNOTATION: Final = "gke-gcsfuse/volumes"
GCSFUSE_ANNOTATIONS: Final = {
    GCSFUSE_ANNOTATION: "true",
    "gke-gcsfuse/cpu-limit": "0",
    "gke-gcsfuse/memory-limit": "0",
    "gke-gcsfuse/ephemeral-storage-limit": "0",
}
"""The pod annotations of GKE's vLLM-on-TPU manifest: inject the FUSE sidecar, with no resource limits."""
GCSFUSE_CACHE_VOLUME: Final = {"name": "gke-gcsfuse-cache", "emptyDir": {"medium": "Memory"}}
"""The FUSE sidecar's file cache, in memory (a checkpoint larger than the boot disk still caches)."""
WEIGHTS_MOUNT_OPTIONS: Final = (
    "implicit-dirs",
    "file-cache:enable-parallel-downloads:true",
    "file-cache:parallel-downloads-per-file:100",
    "file-cache:max-parallel-downloads:-1",
    "file-cache:download-chunk-size-mb:10",
    "file-cache:max-size-mb:-1",
)
"""gcsfuse mount options for the weights bucket, as GKE's manifest reads a 70B checkpoint."""


def _gcs_volume(
    name: str, bucket: GCSFuseStorage, options: tuple[str, ...] = ("implicit-dirs",)
) -> dict[str, Any]:
    options = (*options, *([f"only-dir={bucket.only_dir}"] if bucket.only_dir else []))
    return {
        "name": name,
        "csi": {
            "driver": GCSFUSE_DRIVER,
            "volumeAttributes": {"bucketName": bucket.bucket_name, "mountOptions": ",".join(options)},
        },
    }


def weights_volume(model: DataJaxModel, plan: Plan) -> dict[str, Any]:
    storage = model.spec.model.storage
    if storage is not None and storage.persistent_volume_claim is not None:
        claim = storage.persistent_volume_claim.claim_name
        return {"name": WEIGHTS_VOLUME, "persistentVolumeClaim": {"claimName": claim}}
    if storage is not None and storage.gcs_fuse is not None:
        return _gcs_volume(WEIGHTS_VOLUME, storage.gcs_fuse, WEIGHTS_MOUNT_OPTIONS)
    if plan.storage.size_gi is None:
        return {"name": WEIGHTS_VOLUME, "emptyDir": {}}
    return {"name": WEIGHTS_VOLUME, "emptyDir": {"sizeLimit": f"{plan.storage.size_gi}Gi"}}


def cache_volume(model: DataJaxModel) -> dict[str, Any] | None:
    """The separate XLA cache volume of serving.xlaCache, or None when the cache is on the weights volume."""
    cache = model.spec.serving.xla_cache
    if cache is not None and cache.claim_name is not None:
        return {"name": XLA_CACHE_VOLUME, "persistentVolumeClaim": {"claimName": cache.claim_name}}
    if cache is not None and cache.gcs_fuse is not None:
        return _gcs_volume(XLA_CACHE_VOLUME, cache.gcs_fuse)
    return None


def volumes(model: DataJaxModel, plan: Plan) -> list[dict[str, Any]]:
    """The weights volume and, when separate, the cache volume: on every pod of a slice."""
    cache = cache_volume(model)
    fuse_cache = [dict(GCSFUSE_CACHE_VOLUME)] if uses_gcs_fuse(plan) else []
    return [weights_volume(model, plan), *([cache] if cache is not None else []), *fuse_cache]


def mounts(model: DataJaxModel) -> list[dict[str, Any]]:
    found = [{"name": WEIGHTS_VOLUME, "mountPath": WEIGHTS_DIR}]
    if cache_volume(model) is not None:
        found.append({"name": XLA_CACHE_VOLUME, "mountPath": XLA_CACHE_MOUNT})
    return found


def cache_mounts(model: DataJaxModel) -> list[dict[str, Any]]:
    """The mount that holds the XLA cache: the separate cache volume, else the weights volume."""
    mounts_ = mounts(model)
    return mounts_[1:] if cache_volume(model) is not None else mounts_[:1]


def uses_gcs_fuse(plan: Plan) -> bool:
    return "gcsFuse" in (plan.storage.kind, plan.storage.xla_cache_volume)
