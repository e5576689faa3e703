"""One JAX process of an SPMD validation run (one per host; started by ``launcher``, never imported by it).

The launcher sets ``XLA_FLAGS=--xla_force_host_platform_device_count=<chips per host>`` before this
process starts, because JAX fixes its device count when it initialises. With more than one process the
worker joins the others through ``jax.distributed.initialize`` (coordinator on loopback, CPU collectives
over gloo) and every cross-host step goes through ``jax.experimental.multihost_utils``. Every host runs
the same sequence of collectives whatever it finds, so a mismatch is reported, never turned into a hang.

The first stdout line, printed before JAX starts, is ``{"process", "plan"}``: the digest of the plan this
host loaded. The last is the JSON verdict ``{"process", "ok", "problems"}``; exit 0 when the lowering is
sharded as the plan says, 1 when it is not.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datajax_runtime.partition_spec import ArraySpec, array_problems, format_spec, spec_axes
from datajax_runtime.spmd.case import MeshCase, plan_digest, plan_disagreement, static_problems
from datajax_runtime.spmd.programs import resolve

TOLERANCE = {"float32": 1e-4, "bfloat16": 2e-2}


def sample_inputs(case: MeshCase) -> dict[str, np.ndarray[Any, Any]]:
    """Deterministic inputs from the case's seed: every host builds the same global arrays."""

    rng = np.random.default_rng(case.seed)
    out: dict[str, np.ndarray[Any, Any]] = {}
    for a in case.inputs:
        assert a.shape is not None
        out[a.name] = rng.standard_normal(a.shape, dtype=np.float32)
    return out


def _slicer(value: np.ndarray[Any, Any]) -> Callable[[Any], np.ndarray[Any, Any]]:
    """The callback ``make_array_from_callback`` calls for each addressable shard's index."""

    def shard(index: Any) -> np.ndarray[Any, Any]:
        return np.asarray(value[index])

    return shard


def _fingerprint_problems(case: MeshCase) -> list[str]:
    """The cross-host gate: every host learns whether all loaded the same plan, and none runs the
    collectives of a program the others do not run (that would hang, not fail)."""
    from jax.experimental import multihost_utils

    mine = np.frombuffer(case.fingerprint(), dtype=np.uint8)
    every = np.asarray(multihost_utils.process_allgather(mine))
    found = plan_disagreement({host: bytes(row).hex()[:12] for host, row in enumerate(every)})
    return [found] if found is not None else []


def _sharding_problem(
    name: str, want: ArraySpec, actual: Any, shape: tuple[int, ...], sizes: Mapping[str, int]
) -> str:
    """Name each dimension whose split differs, with the mesh axis the plan wanted."""

    shard = actual.shard_shape(shape)
    got_spec = getattr(actual, "spec", None)
    got = format_spec(tuple(got_spec)) if got_spec is not None else f"shards of shape {shard}"
    details = []
    for dim, size in enumerate(shape):
        entry = want.spec[dim] if dim < len(want.spec) else None
        axes = spec_axes(entry)
        wanted = int(np.prod([sizes[a] for a in axes])) if axes else 1
        split = size // shard[dim] if shard[dim] else 1
        if split == wanted:
            continue
        plan = f"over mesh axis {' x '.join(repr(a) for a in axes)} (x{wanted})" if axes else "replicated"
        got_axes = spec_axes(got_spec[dim]) if got_spec is not None and dim < len(got_spec) else ()
        lowered = (
            f"over mesh axis {' x '.join(repr(a) for a in got_axes)} (x{split})" if got_axes else f"x{split}"
        )
        details.append(f"dim {dim} should be {plan}, the lowering splits it {lowered}")
    return (
        f"output {name!r} is mis-sharded: the plan says {format_spec(want.spec)}, the lowering produced {got}"
        + (" (" + "; ".join(details) + ")" if details else "")
    )


def check(case: MeshCase, multi: bool) -> list[str]:
    """Build the mesh, place inputs, run the program under jit; compare with the plan and an unsharded run."""

    import jax
    from jax.experimental import multihost_utils
    from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

    problems = _fingerprint_problems(case) if multi else []
    if problems:
        return problems
    problems = static_problems(case)
    if len(jax.devices()) != case.devices:
        problems.append(f"mesh {case.shape} needs {case.devices} devices, JAX has {len(jax.devices())}")
    if problems:
        return problems

    mesh = Mesh(
        np.array(jax.devices()).reshape(case.shape), case.axes, axis_types=(AxisType.Auto,) * len(case.axes)
    )
    sizes = dict(zip(case.axes, case.shape, strict=True))
    host = sample_inputs(case)
    placed = {}
    for a in case.inputs:
        sharding = NamedSharding(mesh, PartitionSpec(*a.spec))  # type: ignore[no-untyped-call]
        placed[a.name] = jax.make_array_from_callback(
            host[a.name].shape, sharding, _slicer(host[a.name])
        ).astype(a.dtype)
    program = resolve(case.program)
    result = jax.jit(program)(placed)
    local = jax.local_devices()[0]
    reference = jax.jit(program)(
        {a.name: jax.device_put(host[a.name], local).astype(a.dtype) for a in case.inputs}
    )
    dtype = case.inputs[0].dtype if case.inputs else "float32"

    for want in case.outputs:
        if want.name not in result:
            problems.append(f"the program returned no output {want.name!r} (it returned {sorted(result)})")
            continue
        out = result[want.name]
        shaped = ArraySpec(want.name, want.spec, tuple(out.shape), dtype)
        shape_problems = array_problems("output", shaped, sizes)
        problems.extend(shape_problems)
        expected = NamedSharding(mesh, PartitionSpec(*want.spec))  # type: ignore[no-untyped-call]
        if not shape_problems and not out.sharding.is_equivalent_to(expected, out.ndim):
            problems.append(_sharding_problem(want.name, want, out.sharding, tuple(out.shape), sizes))
        gathered = np.asarray(multihost_utils.process_allgather(out, tiled=True), dtype=np.float32)
        ref = np.asarray(reference[want.name], dtype=np.float32)
        if multi:
            try:
                multihost_utils.assert_equal(ref, f"unsharded reference of {want.name!r}")
            except AssertionError:
                problems.append(f"hosts disagree on the unsharded reference of output {want.name!r}")
        tol = TOLERANCE.get(dtype, 1e-4)
        # Sharded reductions sum in another order: judge the error against the output's scale.
        scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
        worst = float(np.max(np.abs(gathered - ref))) if ref.size else 0.0
        if gathered.shape != ref.shape or worst > tol * scale:
            problems.append(
                f"output {want.name!r} differs from the unsharded run "
                f"(max abs diff {worst:.3g} on values up to {scale:.3g})"
            )
    if multi:
        multihost_utils.sync_global_devices("datajax-validate-mesh-done")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", type=Path, required=True)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--coordinator", default="")
    args = parser.parse_args(argv)
    case = MeshCase.from_json(json.loads(args.case.read_text()))
    multi = args.num_processes > 1
    # Before JAX and any collective: which plan this host loaded, for the launcher to compare
    # whatever becomes of the collectives (a host that times out joining still said what it read).
    print(json.dumps({"process": args.process_id, "plan": plan_digest(case)}), flush=True)

    import jax

    if multi:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # type: ignore[no-untyped-call]
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
            initialization_timeout=60,
        )
    problems = check(case, multi)
    if multi:
        jax.distributed.shutdown()  # type: ignore[no-untyped-call]
    print(json.dumps({"process": args.process_id, "ok": not problems, "problems": problems}), flush=True)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
