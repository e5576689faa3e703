"""The vLLM command line for a plan (DESIGN §4 flags), as `--flag=value` tokens after `vllm serve`."""

import json
from typing import Final

from datajax_operator.api.spec import DataJaxModelSpec
from datajax_operator.plan.mesh import MeshPlan
from datajax_operator.plan.serving import ServingPlan
from datajax_operator.plan.storage import DOWNLOAD_DIR
from datajax_operator.plan.wavespec import (
    FLAG_CHUNKED_PREFILL,
    FLAG_KV_CACHE_DTYPE,
    FLAG_MAX_NUM_BATCHED_TOKENS,
    FLAG_PREFIX_CACHING,
    render_args,
)

VLLM_PORT: Final = 8000


def vllm_args(
    spec: DataJaxModelSpec, served_name: str, mesh: MeshPlan, hosts: int, serving_plan: ServingPlan
) -> list[str]:
    """Arguments of `vllm serve`: the model first, then every flag the operator derives, then extraArgs.

    Prefix caching, the chunk size and the KV-cache dtype come from the serving decisions (spec value,
    else wave spec, else vLLM's default), so the rendered args are exactly what `plan` explains.
    """
    serving = spec.serving

    def decided(flag: str) -> str:
        (arg,) = render_args([serving_plan.decision(flag)])
        return arg

    args = [
        spec.model.name,
        f"--served-model-name={served_name}",
        "--host=0.0.0.0",
        f"--port={VLLM_PORT}",
        f"--tensor-parallel-size={mesh.tensor_parallel}",
        f"--data-parallel-size={mesh.data_parallel}",
        *([f"--pipeline-parallel-size={mesh.pipeline_parallel}"] if mesh.pipeline_parallel > 1 else []),
        # Weights land on the model's volume, not the container's root filesystem (GKE's TPU manifests
        # in GoogleCloudPlatform/kubernetes-engine-samples ai-ml/ put --download-dir on a volume too).
        f"--download-dir={DOWNLOAD_DIR}",
        f"--max-model-len={spec.model.max_model_len}",
        decided(FLAG_MAX_NUM_BATCHED_TOKENS),
        f"--max-num-seqs={serving.max_num_seqs}",
        decided(FLAG_PREFIX_CACHING),
        decided(FLAG_CHUNKED_PREFILL),
        decided(FLAG_KV_CACHE_DTYPE),
    ]
    if serving.speculative_decoding is not None:
        config = {
            "method": serving.speculative_decoding.method,
            "num_speculative_tokens": serving.speculative_decoding.num_speculative_tokens,
        }
        args.append(f"--speculative-config={json.dumps(config, separators=(',', ':'))}")
    if spec.model.revision is not None:
        args.append(f"--revision={spec.model.revision}")
    if hosts > 1:
        # A multi-host slice is one Ray cluster (TPU_MULTIHOST_BACKEND=ray); vLLM must place workers on it.
        args.append("--distributed-executor-backend=ray")
    args.extend(serving.extra_args)
    return args
