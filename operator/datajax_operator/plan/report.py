"""The `-o table` view of a plan: what a person reads before applying a model."""

import shlex

from datajax_operator.plan.planner import Plan
from datajax_operator.plan.wavespec import render_args


def format_table(name: str, replicas: int, plan: Plan) -> str:
    """Placement, mesh, cost, each serving decision with its reason and the vLLM command, for a terminal."""
    p, m, c = plan.placement, plan.mesh, plan.cost
    generation = f"{p.generation} (preview)" if p.preview else p.generation
    price_source = c.pricing if c.pricing is not None else "spec.cost.usdPerChipHour"
    rows = [
        ("MODEL", name),
        ("SERVED AS", plan.served_name),
        ("TPU", f"{generation}  {p.topology}  ({p.accelerator})"),
        (
            "SLICE",
            f"{p.chips} chips = {p.hosts} host(s) x {p.chips_per_host} chips, {p.machine_type}"
            + (
                f"; {p.devices} JAX devices ({p.devices_per_chip} per chip)" if p.devices_per_chip > 1 else ""
            ),
        ),
        ("WORKLOAD", f"{p.workload} x {replicas} replica(s)"),
        (
            "MESH",
            " x ".join(f"{a}={n}" for a, n in zip(m.axes, m.shape, strict=True))
            + f" per engine process  (tensor parallel {m.tensor_parallel}, data parallel {m.data_parallel}"
            + (f", pipeline parallel {m.pipeline_parallel}" if m.pipeline_parallel > 1 else "")
            + ")",
        ),
        ("REPLICA", m.describe()),
        (
            "STORAGE",
            f"{plan.storage.kind}"
            + (f" {plan.storage.size_gi}Gi" if plan.storage.size_gi is not None else "")
            + f", weights in {plan.storage.download_dir}, XLA cache {plan.storage.xla_cache_dir}",
        ),
        ("PRICE", f"${c.usd_per_chip_hour:g}/chip-hour ({price_source})" + (f"; {c.note}" if c.note else "")),
        ("COST", f"${c.usd_per_hour:,.2f}/hour for all replicas"),
        ("CEILING", f"${c.ceiling_usd_per_million_tokens:g} per million tokens"),
        ("BREAK-EVEN", f"{c.breakeven_tokens_per_second:,.1f} tokens/s to stay under the ceiling"),
    ]
    if plan.capacity is not None:
        roof = plan.capacity.roofline
        if roof is not None:
            rows.append(
                (
                    "ROOFLINE",
                    f"per slice: decode {roof.decode_tokens_per_second:,.0f} tokens/s "
                    f"({roof.decode_bound}-bound, batch {roof.batch}, context {roof.context_tokens}), "
                    f"prefill {roof.prefill_tokens_per_second:,.0f} tokens/s",
                )
            )
        rows.append(("CAPACITY", plan.capacity.summary()))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
    if plan.decisions:
        lines.append("")
        lines.append("SERVING DECISIONS")
        flags = [render_args([d])[0] for d in plan.decisions]
        flag_width = max(len(f) for f in flags)
        source_width = max(len(d.source) for d in plan.decisions) + 2
        for flag, d in zip(flags, plan.decisions, strict=True):
            lines.append(f"  {flag.ljust(flag_width)}  {f'[{d.source}]'.ljust(source_width)}  {d.reason}")
    if plan.warnings:
        lines.append("")
        lines.append("WARNINGS")
        lines.extend(f"  {w}" for w in plan.warnings)
    lines.append("")
    lines.append("vLLM COMMAND")
    lines.append("  vllm serve " + " \\\n    ".join(shlex.quote(a) for a in plan.vllm_args))
    return "\n".join(lines) + "\n"
