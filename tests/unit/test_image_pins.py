"""The vLLM TPU release is pinned in one place (tools/versions.env) and must agree everywhere it shows.

The runtime image builds from vllm/vllm-tpu:v<VLLM_TPU_VERSION>, the operator deploys that same tag by
default, and the tested Python stack (tools/tpu-env.lock, installed by `make tpu-env`) is the PyPI
release of the same number: vllm-tpu and tpu-inference at VLLM_TPU_VERSION. The image is pinned by
tag, not digest: no source available here states the digest of vllm/vllm-tpu:v0.29.0 (see
docs/tpu-stack.md).
"""

import re
from pathlib import Path

from datajax_operator.plan.config import VLLM_TPU_IMAGE

REPO = Path(__file__).resolve().parents[2]


def _versions() -> dict[str, str]:
    text = (REPO / "tools" / "versions.env").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(\S+)$", text, re.MULTILINE))


def _dockerfile_tag() -> str:
    dockerfile = (REPO / "runtime_image" / "Dockerfile").read_text()
    match = re.search(r"^ARG VLLM_TPU_TAG=(\S+)$", dockerfile, re.MULTILINE)
    assert match, "runtime_image/Dockerfile must pin VLLM_TPU_TAG"
    return match.group(1)


def test_runtime_image_builds_from_the_vllm_tag_the_operator_deploys() -> None:
    tag = _dockerfile_tag()
    assert f"vllm/vllm-tpu:{tag}" == VLLM_TPU_IMAGE
    assert tag != "latest"


def test_image_tag_and_tested_python_stack_are_one_release() -> None:
    version = _versions()["VLLM_TPU_VERSION"]
    assert _dockerfile_tag() == f"v{version}"
    lock = dict(
        line.split("==", 1)
        for line in (REPO / "tools" / "tpu-env.lock").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert lock["vllm-tpu"] == version
    assert lock["tpu-inference"] == version
    assert all(lock.values()), "every package of the tpu-env is pinned"
