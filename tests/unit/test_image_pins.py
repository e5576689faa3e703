"""The vLLM TPU tag is pinned twice (runtime image base, operator default image): keep them one."""

import re
from pathlib import Path

from datajax_operator.plan.config import VLLM_TPU_IMAGE

REPO = Path(__file__).resolve().parents[2]


def test_runtime_image_builds_from_the_vllm_tag_the_operator_deploys() -> None:
    dockerfile = (REPO / "runtime_image" / "Dockerfile").read_text()
    match = re.search(r"^ARG VLLM_TPU_TAG=(\S+)$", dockerfile, re.MULTILINE)
    assert match, "runtime_image/Dockerfile must pin VLLM_TPU_TAG"
    assert f"vllm/vllm-tpu:{match.group(1)}" == VLLM_TPU_IMAGE
    assert match.group(1) != "latest"
