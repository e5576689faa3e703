"""Issue 15 items 4 and 8: where the weights go (--download-dir on a volume every pod mounts) and the
managed XLA compile cache (VLLM_XLA_CACHE_PATH keyed by what a compiled program depends on).

Before issue 15 no pod had a download dir or a weights volume, and the cache existed only when a PVC
was named, at one unkeyed path: every test here fails on that code.
"""

from typing import Any

import pytest
from djm_fixtures import model_with

from datajax_operator.api import DataJaxModel
from datajax_operator.plan import OperatorConfig, make_plan
from datajax_operator.plan.storage import DOWNLOAD_DIR, WEIGHTS_DIR
from datajax_operator.render.objects import render_objects
from datajax_operator.render.storage import GCSFUSE_ANNOTATION, GCSFUSE_DRIVER

CONFIG = OperatorConfig()
MULTIHOST = {"generation": "v6e", "topology": "4x4"}


def _templates(model: DataJaxModel) -> list[dict[str, Any]]:
    plan = make_plan(model, CONFIG)
    (workload,) = [
        o for o in render_objects(model, plan, CONFIG) if o["kind"] in ("Deployment", "LeaderWorkerSet")
    ]
    if workload["kind"] == "Deployment":
        return [workload["spec"]["template"]]
    lws = workload["spec"]["leaderWorkerTemplate"]
    return [lws["leaderTemplate"], lws["workerTemplate"]]


def _vllm(template: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in template["spec"]["containers"] if c["name"] == "vllm")


def _env(template: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in _vllm(template)["env"]}


def _volume(template: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in template["spec"]["volumes"] if v["name"] == name)


def test_weights_download_to_a_volume_on_every_pod() -> None:
    model = model_with(tpu=MULTIHOST, model={"name": "m", "parametersBillions": 70, "dtype": "bfloat16"})
    plan = make_plan(model, CONFIG)
    assert f"--download-dir={DOWNLOAD_DIR}" in plan.vllm_args
    assert DOWNLOAD_DIR.startswith(WEIGHTS_DIR + "/")
    templates = _templates(model)
    assert len(templates) == 2
    for template in templates:
        mounts = {m["name"]: m["mountPath"] for m in _vllm(template)["volumeMounts"]}
        assert mounts["weights"] == WEIGHTS_DIR


def test_default_is_an_emptydir_sized_from_the_model_with_an_ephemeral_storage_request() -> None:
    """70B bf16 = 140 GB of weights: 163 GiB with margin plus 10 GiB of cache room, more than the 100 GB
    boot disk GKE gives a node by default, so the scheduler must know."""
    model = model_with(model={"name": "m", "parametersBillions": 70, "dtype": "bfloat16"})
    (template,) = _templates(model)
    assert _volume(template, "weights") == {"name": "weights", "emptyDir": {"sizeLimit": "173Gi"}}
    assert _vllm(template)["resources"]["requests"]["ephemeral-storage"] == "173Gi"
    assert "ephemeral-storage" not in _vllm(template)["resources"]["limits"]


def test_explicit_emptydir_size_and_unknown_model_size() -> None:
    sized = model_with(model={"name": "m", "storage": {"emptyDir": {"sizeLimit": "300Gi"}}})
    assert _volume(_templates(sized)[0], "weights")["emptyDir"]["sizeLimit"] == "300Gi"
    unknown = model_with(model={"name": "m"})
    (template,) = _templates(unknown)
    assert _volume(template, "weights") == {"name": "weights", "emptyDir": {}}
    assert "ephemeral-storage" not in _vllm(template)["resources"]["requests"]
    (warning,) = make_plan(unknown, CONFIG).warnings
    assert warning.field == "spec.model.storage" and "parametersBillions" in warning.message


def test_a_claim_is_mounted_without_an_ephemeral_request() -> None:
    model = model_with(
        tpu=MULTIHOST, model={"name": "m", "storage": {"persistentVolumeClaim": {"claimName": "w"}}}
    )
    for template in _templates(model):
        assert _volume(template, "weights")["persistentVolumeClaim"] == {"claimName": "w"}
        assert "ephemeral-storage" not in _vllm(template)["resources"]["requests"]


def test_a_bucket_goes_through_the_gcs_fuse_csi_driver_with_its_annotation() -> None:
    model = model_with(
        tpu=MULTIHOST,
        model={"name": "m", "storage": {"gcsFuse": {"bucketName": "my-bucket", "onlyDir": "llama"}}},
        serving={"serviceAccountName": "vllm-sa"},
    )
    for template in _templates(model):
        assert template["metadata"]["annotations"][GCSFUSE_ANNOTATION] == "true"
        assert template["spec"]["serviceAccountName"] == "vllm-sa"
        csi = _volume(template, "weights")["csi"]
        assert csi["driver"] == GCSFUSE_DRIVER == "gcsfuse.csi.storage.gke.io"
        assert csi["volumeAttributes"]["bucketName"] == "my-bucket"
        options = csi["volumeAttributes"]["mountOptions"].split(",")
        assert options[0] == "implicit-dirs" and options[-1] == "only-dir=llama"
        assert "file-cache:enable-parallel-downloads:true" in options
        # As GKE's ai-ml/vllm-tpu manifest: the FUSE sidecar unlimited, its file cache in memory.
        assert template["metadata"]["annotations"]["gke-gcsfuse/memory-limit"] == "0"
        cache = _volume(template, "gke-gcsfuse-cache")
        assert cache == {"name": "gke-gcsfuse-cache", "emptyDir": {"medium": "Memory"}}


def test_no_gcs_annotation_without_a_bucket() -> None:
    for template in _templates(model_with()):
        assert GCSFUSE_ANNOTATION not in template["metadata"]["annotations"]
        assert all(v["name"] != "gke-gcsfuse-cache" for v in template["spec"]["volumes"])


def _cache_path(**changes: Any) -> str:
    return _env(_templates(model_with(**changes))[0])["VLLM_XLA_CACHE_PATH"]


def test_the_compile_cache_is_on_by_default_on_the_weights_volume() -> None:
    path = _cache_path()
    assert path.startswith(f"{WEIGHTS_DIR}/xla-cache/") and len(path.rsplit("/", 1)[1]) == 16


def test_every_pod_of_a_slice_uses_the_same_cache_directory() -> None:
    templates = _templates(model_with(tpu=MULTIHOST))
    assert len({_env(t)["VLLM_XLA_CACHE_PATH"] for t in templates}) == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"model": {"name": "org/model", "maxModelLen": 8192}},
        {"model": {"name": "org/other"}},
        {"serving": {"maxNumSeqs": 128}},
        {"serving": {"chunkedPrefill": {"maxNumBatchedTokens": 4096}}},
        {"serving": {"kvCacheDtype": "fp8"}},
        {"serving": {"image": "vllm/vllm-tpu:v0.30.0"}},
        {"tpu": {"generation": "v6e", "topology": "2x4", "machineType": "ct6e-standard-4t"}},
        {"mesh": {"shape": [2, 4]}},
    ],
)
def test_the_cache_key_changes_with_what_a_program_depends_on(changes: dict[str, Any]) -> None:
    assert _cache_path(**changes) != _cache_path()


@pytest.mark.parametrize(
    "changes",
    [{"replicas": 3}, {"cost": {"ceilingUSDPerMillionTokens": 9.0}}, {"slo": {"p95LatencySeconds": 3}}],
)
def test_the_cache_key_ignores_what_compiled_programs_do_not_depend_on(changes: dict[str, Any]) -> None:
    assert _cache_path(**changes) == _cache_path()


def test_a_separate_cache_volume() -> None:
    model = model_with(serving={"xlaCache": {"gcsFuse": {"bucketName": "xla-bucket"}}})
    (template,) = _templates(model)
    assert _env(template)["VLLM_XLA_CACHE_PATH"].startswith("/var/cache/datajax-xla/")
    attributes = _volume(template, "xla-cache")["csi"]["volumeAttributes"]
    assert attributes == {"bucketName": "xla-bucket", "mountOptions": "implicit-dirs"}
    assert template["metadata"]["annotations"][GCSFUSE_ANNOTATION] == "true"
    claim = model_with(serving={"xlaCache": {"claimName": "xla"}})
    assert _volume(_templates(claim)[0], "xla-cache")["persistentVolumeClaim"] == {"claimName": "xla"}


def test_plan_json_reports_the_storage() -> None:
    storage = make_plan(model_with(), CONFIG).to_json()["storage"]
    assert isinstance(storage, dict)
    assert storage["kind"] == "emptyDir" and storage["downloadDir"] == DOWNLOAD_DIR
    assert storage["xlaCache"]["volume"] == "weights"  # type: ignore[index]
