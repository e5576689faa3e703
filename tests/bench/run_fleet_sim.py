"""The fleet simulator's comparison: three traces, three policies, two cost ceilings (bench, not a test).

    python tests/bench/run_fleet_sim.py [--hours-scale 1.0] [--out bench/results]

Prints one Markdown table per scenario (docs/benchmarks.md, "Autoscaling") and writes the run's JSON
to bench/results/fleet-sim-<UTC stamp>.json. About 2 minutes of one core at full size; the smoke mode
(`--hours-scale 0.05`, tests/bench/test_bench_smoke.py) runs every cell on a few simulated minutes.
See fleet_sim.py for what is simulated.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet_sim as fs

REPO = Path(__file__).resolve().parents[2]
HPA_TARGETS = (0.25, 0.5, 1.0, 2.0)
"""Average vllm:num_requests_waiting per pod the HPA is tried at; the best-complying one is reported."""

SCENARIOS = {
    "default ceiling ($3/Mtok, 5-minute cost window)": fs.Scenario(ceiling=3.0, window_seconds=300),
    "binding ceiling ($1/Mtok, 2-minute cost window)": fs.Scenario(ceiling=1.0, window_seconds=120),
}


def traces(scale: float) -> dict[str, tuple[fs.Trace, float]]:
    return {
        "diurnal": fs.diurnal(120_000, 30_000, hours=24 * scale),
        "bursty": fs.bursty(45_000, hours=12 * scale),
        "step": fs.steps(
            [(h * scale, level) for h, level in [(1, 30_000), (2, 110_000), (1.5, 50_000), (1.5, 30_000)]]
        ),
    }


def run(scale: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, scenario in SCENARIOS.items():
        capacity = fs.capacity_at_slo(scenario)
        per_trace: dict[str, Any] = {}
        for name, (trace, seconds) in traces(scale).items():
            initial = math.ceil(trace(0) / capacity)
            peak = max(trace(t * fs.STEP) for t in range(int(seconds / fs.STEP)))
            cells: dict[str, Any] = {
                "autoscaler": fs.simulate(
                    scenario, trace, seconds, fs.autoscaler(scenario, initial), initial=initial
                ),
                "fixed": fs.simulate(
                    scenario, trace, seconds, fs.fixed(math.ceil(peak / capacity)), initial=initial
                )
                | {"replicas": math.ceil(peak / capacity)},
            }
            sweep = {
                str(target): fs.simulate(scenario, trace, seconds, fs.hpa(scenario, target), initial=initial)
                for target in HPA_TARGETS
            }
            best = max(sweep, key=lambda t: (sweep[t]["both_in_feasible"], -sweep[t]["usd"]))
            cells["hpa"] = sweep[best] | {"target": float(best), "sweep": sweep}
            per_trace[name] = cells
        results[label] = {
            "scenario": {
                "slo_seconds": scenario.slo_seconds,
                "ceiling_usd_per_mtok": scenario.ceiling,
                "window_seconds": scenario.window_seconds,
                "replicas": [scenario.min_replicas, scenario.max_replicas],
                "slice_usd_per_hour": scenario.slice_usd_per_hour,
                "breakeven_tokens_per_second_per_slice": round(scenario.breakeven_per_slice, 1),
                "true_capacity_at_slo": round(capacity, 1),
                "cold_start_seconds": fs.COLD_START,
                "step_seconds": fs.STEP,
            },
            "traces": per_trace,
        }
    return results


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f} %"


def tables(results: dict[str, Any]) -> str:
    lines: list[str] = []
    for label, block in results.items():
        lines += [
            f"#### {label}",
            "",
            "| trace | policy | feasible windows in both bounds | all windows: p95 ≤ SLO | all windows: "
            "$/Mtok ≤ ceiling | dollars | tokens served (M) | scale events |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for trace, cells in block["traces"].items():
            for policy in ("autoscaler", "hpa", "fixed"):
                c = cells[policy]
                name = {
                    "autoscaler": "autoscaler (spec.scaling, PreferSLO)",
                    "hpa": f"HPA on num_requests_waiting (target {c.get('target')})",
                    "fixed": f"fixed {c.get('replicas')} slices (peak)",
                }[policy]
                lines.append(
                    f"| {trace} | {name} | {_pct(c['both_in_feasible'])} of {c['feasible_windows']} | "
                    f"{_pct(c['slo_all'])} | {_pct(c['cost_all'])} | ${c['usd']:,.0f} | "
                    f"{c['tokens_served_millions']:,.0f} of {c['tokens_offered_millions']:,.0f} | "
                    f"{c['scale_events']} |"
                )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hours-scale", type=float, default=1.0, help="shorten every trace (smoke: 0.05)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="directory for the JSON")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = run(args.hours_scale)
    document = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hours_scale": args.hours_scale,
        "seconds": round(time.monotonic() - started, 1),
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"fleet-sim-{document['started_at'].replace(':', '').replace('-', '')}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(tables(results))
    print(f"JSON: {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({document['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
