"""`make bench`: start a local control plane, run every benchmark, print tables, write the JSON.

    python tests/bench/run_bench.py [--sizes 100,500,1000] [--smoke] [--out bench/results]

Not part of `make test` (it takes ~10 minutes and its figures depend on the machine's load); the
smoke mode (`--smoke`, or tests/bench/test_bench_smoke.py) runs every benchmark at a tiny size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_reconcile
import bench_sidecar
import bench_traffic
from apiclient import Api, Endpoint
from procs import machine
from report import check, tables

from datajax_devtools.localcluster import LocalCluster

REPO = Path(__file__).resolve().parents[2]
CRD_PATHS = [REPO / "crds", REPO / "tests" / "crds"]


async def _traffic(
    endpoint: Endpoint, kubeconfig: Path, workdir: Path, settings: bench_traffic.TrafficSettings
) -> list[dict[str, Any]]:
    async with Api(endpoint) as api:
        return await bench_traffic.measure(api, kubeconfig, workdir, settings)


def run(
    endpoint: Endpoint,
    kubeconfig: Path,
    workdir: Path,
    settings: bench_reconcile.Settings,
    *,
    smoke: bool,
    traffic: bench_traffic.TrafficSettings | None = None,
    scenarios: frozenset[str] = frozenset({"reconcile", "traffic", "sidecar"}),
) -> dict[str, Any]:
    """Every benchmark against an already running control plane."""
    started = time.monotonic()
    traffic = traffic or (bench_traffic.TrafficSettings.smoke() if smoke else bench_traffic.TrafficSettings())
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "settings": {k: v for k, v in vars(settings).items()},
        "traffic_settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(traffic).items()},
    }
    if "reconcile" in scenarios:
        print("==> reconcile: raw limit, minimal kopf operator, datajax-operator", flush=True)
        results["reconcile"] = asyncio.run(bench_reconcile.measure(endpoint, kubeconfig, workdir, settings))
    if "traffic" in scenarios:
        print("==> traffic: steady state with live sidecars (one loopback farm)", flush=True)
        results["traffic"] = asyncio.run(_traffic(endpoint, kubeconfig, workdir, traffic))
    if "sidecar" not in scenarios:
        results["seconds"] = round(time.monotonic() - started, 1)
        return results
    print("==> sidecar: scrape-and-compute vs prometheus_client", flush=True)
    results["sidecar"] = (
        bench_sidecar.measure(iterations=2, repeats=1, ring=2)
        if smoke
        else bench_sidecar.measure(iterations=200, repeats=5, ring=120)
    )
    results["machine"]["load_average_end"] = machine()["load_average"]
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,500,1000", help="comma-separated model counts")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and windows: checks shape only")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--steady-seconds", type=float, default=60.0, help="steady-state window at the largest N"
    )
    parser.add_argument("--workers", type=int, help="datajax-operator run --workers (default: its own)")
    parser.add_argument("--keep", type=Path, help="keep the operators' logs and profiles in this directory")
    parser.add_argument(
        "--scenarios",
        default="reconcile,traffic,sidecar",
        help="comma-separated: reconcile, traffic, sidecar",
    )
    parser.add_argument(
        "--traffic-sizes", default="100,500,1000", help="model counts of the traffic scenario"
    )
    parser.add_argument("--traffic-seconds", type=float, default=120.0, help="traffic scenario window")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. a worktree of main) whose operator the traffic scenario also runs",
    )
    args = parser.parse_args(argv)
    traffic = (
        bench_traffic.TrafficSettings.smoke()
        if args.smoke
        else bench_traffic.TrafficSettings(
            sizes=tuple(int(n) for n in args.traffic_sizes.split(",")),
            window_seconds=args.traffic_seconds,
            baseline=args.baseline,
        )
    )
    settings = (
        bench_reconcile.Settings.smoke()
        if args.smoke
        else bench_reconcile.Settings(
            sizes=tuple(int(n) for n in args.sizes.split(",")),
            steady_seconds=args.steady_seconds,
            workers=args.workers,
        )
    )
    with tempfile.TemporaryDirectory(prefix="datajax-bench-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        # the operator's own costs: no scheduler or controllers turning thousands of models' Deployments
        # into pods beside it (they would measure the controllers, not the operator)
        with LocalCluster(
            crd_paths=[p for p in CRD_PATHS if p.exists()], workdir=workdir / "cluster", controllers=False
        ) as cluster:
            endpoint = Endpoint(cluster.server, cluster.token, cluster.ca_cert)
            results = run(
                endpoint,
                cluster.kubeconfig,
                workdir,
                settings,
                smoke=args.smoke,
                traffic=traffic,
                scenarios=frozenset(args.scenarios.split(",")),
            )
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{results['started_at'].replace(':', '').replace('-', '')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(tables(results))
    print(f"\nresults: {out}")
    check(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
