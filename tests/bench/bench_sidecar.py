"""CPU cost of one sidecar scrape-and-compute, against prometheus_client's parser as a baseline.

    python tests/bench/bench_sidecar.py [--iterations N] [--repeats R]

One scrape-and-compute = parse the exposition, pick the window series, fold it into a full ring
(a 10-minute window at 5 s: ~120 scrapes), compute the figures and render `/metrics` — what the
sidecar does every interval. The baseline swaps only the parser (prometheus_client's text parser,
then the same series picked from its families). Inputs: the real ~50 KB vLLM 0.32.0 exposition, and
an 8-engine one synthesised from it (every `engine="0"` series repeated for engines 0..7).
Figures are the best of R repeats (least disturbed by other processes); printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from datajax_runtime.exporter import ExportState, render
from datajax_runtime.exposition import parse
from datajax_runtime.ring import ScrapeRing
from datajax_runtime.window import COUNTERS, HISTOGRAMS, Pricing, Snapshot, figures, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vllm_fixtures import scrape_text

PRICING = Pricing(chips=8, usd_per_chip_hour=2.7)
INTERVAL = 5.0


def eight_engines(text: str) -> str:
    out: list[str] = []
    for line in text.split("\n"):
        if 'engine="0"' in line and not line.startswith("#"):
            out.extend(line.replace('engine="0"', f'engine="{engine}"') for engine in range(8))
        else:
            out.append(line)
    return "\n".join(out)


def snapshot_via_prometheus_client(text: str, at: float) -> Snapshot:
    """The same Snapshot, built from prometheus_client's parse of the text."""
    wanted_counters = set(COUNTERS)
    wanted_buckets = {name + "_bucket": name for name in HISTOGRAMS}
    counters: dict[str, dict[str, float]] = {}
    buckets: dict[str, dict[str, tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            if sample.name in wanted_counters:
                counters.setdefault(sample.name, {})[key] = sample.value
            elif sample.name in wanted_buckets:
                bound = float(sample.labels["le"])
                buckets.setdefault(wanted_buckets[sample.name], {})[key] = (bound, sample.value)
    return Snapshot(time=at, counters=counters, buckets=buckets)


def scrape_and_compute(
    make: Callable[[str, float], Snapshot], text: str, iterations: int, repeats: int, ring_size: int
) -> tuple[float, float]:
    """Best (wall, CPU) microseconds per scrape-and-compute over `repeats` runs of `iterations`."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        ring = ScrapeRing(window_seconds=600)
        at = 0.0
        for _ in range(ring_size):  # fill the window before timing
            at += INTERVAL
            ring.add(make(text, at))
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(iterations):
            at += INTERVAL
            ring.add(make(text, at))
            result = figures(ring.window(), PRICING)
            render(ExportState(result, PRICING, True, 0, None, False, None, ""))
        best_wall = min(best_wall, (time.perf_counter() - wall) / iterations * 1e6)
        best_cpu = min(best_cpu, (time.process_time() - cpu) / iterations * 1e6)
    return best_wall, best_cpu


def ours(text: str, at: float) -> Snapshot:
    return snapshot(parse(text), at)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--iterations", type=int, default=200, help="scrapes per timed run (baseline: a tenth)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--ring", type=int, default=int(600 / INTERVAL), help="scrapes in the window (10m / 5s)"
    )
    args = parser.parse_args(argv)
    for row in measure(args.iterations, args.repeats, args.ring):
        print(
            f"{row['input']} ({row['kib']:.1f} KiB, {row['samples']} samples): "
            f"datajax {row['datajax_us']:.0f} us/scrape (cpu {row['datajax_cpu_us']:.0f} us), "
            f"prometheus_client {row['baseline_us']:.0f} us/scrape (cpu {row['baseline_cpu_us']:.0f} us), "
            f"ratio {row['ratio']:.1f}x"
        )
    return 0


def measure(iterations: int, repeats: int, ring: int) -> list[dict[str, Any]]:
    """One row per input: microseconds per scrape-and-compute (wall and CPU), ours and the baseline."""
    real = scrape_text(3)
    inputs = {"real vLLM 0.32.0 exposition": real, "8-engine synthesised exposition": eight_engines(real)}
    rows = []
    for label, text in inputs.items():
        wall, cpu = scrape_and_compute(ours, text, iterations, repeats, ring)
        base_wall, base_cpu = scrape_and_compute(
            snapshot_via_prometheus_client, text, max(1, iterations // 10), repeats, ring
        )
        rows.append(
            {
                "input": label,
                "kib": round(len(text.encode()) / 1024, 1),
                "samples": len(parse(text).names),
                "datajax_us": round(wall, 1),
                "datajax_cpu_us": round(cpu, 1),
                "baseline_us": round(base_wall, 1),
                "baseline_cpu_us": round(base_cpu, 1),
                "ratio": round(base_wall / wall, 1),
                "cpu_ratio": round(base_cpu / cpu, 1) if cpu > 0 else None,
            }
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
