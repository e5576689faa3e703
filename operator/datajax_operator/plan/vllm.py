"""The vLLM command line for a plan (DESIGN §4 flags), as `--flag=value` tokens after `vllm serve`."""

import json
from typing import Final

from datajax_operator.api.spec import DataJaxModelSpec
from datajax_operator.plan.mesh import MeshPlan

VLLM_PORT: Final = 8000
DEFAULT_MAX_NUM_BATCHED_TOKENS: Final = 2048


def vllm_args(spec: DataJaxModelSpec, served_name: str, mesh: MeshPlan, hosts: int) -> list[str]:
    """Arguments of `vllm serve`: the model first, then every flag the operator derives, then extraArgs."""
    serving = spec.serving
    batched = serving.chunked_prefill.max_num_batched_tokens or DEFAULT_MAX_NUM_BATCHED_TOKENS
    args = [
        spec.model.name,
        f"--served-model-name={served_name}",
        "--host=0.0.0.0",
        f"--port={VLLM_PORT}",
        f"--tensor-parallel-size={mesh.tensor_parallel}",
        f"--data-parallel-size={mesh.data_parallel}",
        f"--max-model-len={spec.model.max_model_len}",
        f"--max-num-batched-tokens={batched}",
        f"--max-num-seqs={serving.max_num_seqs}",
        "--enable-prefix-caching" if serving.prefix_caching else "--no-enable-prefix-caching",
        "--enable-chunked-prefill",
        f"--kv-cache-dtype={serving.kv_cache_dtype}",
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
