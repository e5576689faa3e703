"""Pre-flight checks: everything that makes a spec unservable, found before any pod is scheduled.

The object-local rules of `api.rules` (also enforced by the CRD's CEL) come first; then the checks
that need the catalog: tensor parallelism against the model's heads, and weights against HBM.
"""

from functools import cache
from typing import Final

from datajax_operator.api.rules import MANAGED_VLLM_FLAGS, broken_rules
from datajax_operator.api.spec import DataJaxModelSpec, ModelSource
from datajax_operator.plan.catalog import GB, Placement
from datajax_operator.plan.mesh import MeshPlan
from datajax_operator.plan.problems import Problem
from datajax_operator.plan.vllm_flags import FlagError, dests_set_by, flag_table, is_negative_number

BYTES_PER_PARAMETER: Final[dict[str, float]] = {
    "bfloat16": 2,
    "float16": 2,
    "float32": 4,
    "fp8": 1,
    "int8": 1,
    "int4": 0.5,
}
HBM_USABLE_FRACTION: Final = 0.9
"""Share of HBM the runtime leaves to vLLM (XLA, compiled programs and activations take the rest)."""
KV_CACHE_FRACTION: Final = 0.1
"""Share of HBM kept free of weights so the KV cache holds at least a few full-length sequences."""


def rule_problems(spec: DataJaxModelSpec) -> list[Problem]:
    """The object-local rules the spec breaks (the same ones the API server enforces with CEL)."""
    return [Problem(rule.path, rule.message) for rule in broken_rules(spec)]


def head_problems(spec: DataJaxModelSpec, mesh: MeshPlan) -> list[Problem]:
    """Tensor parallelism splits attention heads across chips, so tp must divide them.

    KV heads may also be fewer than tp when tp is a multiple of them: vLLM then replicates each KV head.
    """
    problems = []
    tp = mesh.tensor_parallel
    heads = spec.model.attention_heads
    if heads is not None and heads % tp != 0:
        problems.append(
            Problem(
                "spec.model.attentionHeads",
                f"tensor parallel {tp} does not divide {heads} attention heads: pick a mesh whose model axis "
                f"divides {heads} (e.g. mesh.shape [{_dp_for(heads, tp)}, {tp // _dp_for(heads, tp)}]) "
                "or another topology",
            )
        )
    kv = spec.model.kv_heads
    if kv is not None and kv % tp != 0 and tp % kv != 0:
        problems.append(
            Problem(
                "spec.model.kvHeads",
                f"tensor parallel {tp} neither divides nor is a multiple of {kv} KV heads: pick a model axis "
                f"that divides {kv} or is a multiple of it",
            )
        )
    return problems


def _dp_for(heads: int, tp: int) -> int:
    """Smallest data-parallel split of tp chips whose model axis divides heads (a suggestion only)."""
    for dp in range(1, tp + 1):
        if tp % dp == 0 and heads % (tp // dp) == 0:
            return dp
    return tp


def weight_bytes(model: ModelSource) -> float | None:
    """Bytes of the weights (parametersBillions x bytes per parameter of model.dtype); None without both."""
    if model.parameters_billions is None or model.dtype is None:
        return None
    return model.parameters_billions * 1e9 * BYTES_PER_PARAMETER[model.dtype]


def hbm_problems(spec: DataJaxModelSpec, placement: Placement, mesh: MeshPlan) -> list[Problem]:
    """Weights must fit in the HBM of one engine with room left for the KV cache.

    Each data-parallel engine holds a full copy of the weights over its tp x pp devices; HBM is counted
    per JAX device (half a chip on TPU7x, tpu-inference `get_device_hbm_limit`).
    """
    params, dtype, weights = spec.model.parameters_billions, spec.model.dtype, weight_bytes(spec.model)
    if params is None or dtype is None or weights is None:
        return []
    engine_devices = mesh.tensor_parallel * mesh.pipeline_parallel
    hbm = placement.hbm_bytes_per_device * engine_devices
    room = hbm * (HBM_USABLE_FRACTION - KV_CACHE_FRACTION)
    if weights <= room:
        return []
    return [
        Problem(
            "spec.model.parametersBillions",
            f"{params:g}B parameters in {dtype} need {weights / GB:.1f} GB of weights, but "
            f"{engine_devices} "
            f"{placement.generation} devices leave {room / GB:.1f} GB after runtime and KV-cache headroom: "
            "use a "
            "larger topology, a smaller dtype, or fewer data-parallel engines",
        )
    ]


@cache
def _managed_dests() -> frozenset[str]:
    """vLLM destinations of the flags the operator derives (a fact of the committed table: read once)."""
    table = flag_table()
    return frozenset(dest for flag in MANAGED_VLLM_FLAGS if (dest := table.dests_of(flag)) is not None)


def _flag_groups(args: list[str]) -> list[tuple[int, list[str]]]:
    """Each flag token of extraArgs with the bare tokens that follow it (its values), by index. A
    negative number (`--seed -1`) is a value, as argparse reads it while no option looks like one."""
    groups: list[tuple[int, list[str]]] = []
    for i, arg in enumerate(args):
        if (arg.startswith("-") and not is_negative_number(arg)) or not groups:
            groups.append((i, [arg]))
        else:
            groups[-1][1].append(arg)
    return groups


def extra_args_problems(spec: DataJaxModelSpec) -> list[Problem]:
    """extraArgs as vLLM's own parser reads them: every flag must exist in the pinned vLLM, and none may
    reach a flag the operator derives through an alias (--tensor_parallel_size, a unique prefix such
    as --tensor-parallel, -tp). The exact managed forms are already refused by the admission rule."""
    table, managed = flag_table(), _managed_dests()
    problems = []
    for index, group in _flag_groups(list(spec.serving.extra_args)):
        field = f"spec.serving.extraArgs[{index}]"
        try:
            dests = dests_set_by(group)
        except FlagError as err:
            problems.append(Problem(field, f"vLLM {table.vllm_version} refuses {' '.join(group)!r}: {err}"))
            continue
        derived = sorted(dests & managed)
        if derived:
            names = ", ".join("--" + d.replace("_", "-") for d in derived)
            problems.append(
                Problem(
                    field,
                    f"{group[0]!r} is read by vLLM {table.vllm_version} as {names}, a flag the operator "
                    "derives: set the matching spec field (mesh, model.maxModelLen, serving.*) instead",
                )
            )
    return problems
