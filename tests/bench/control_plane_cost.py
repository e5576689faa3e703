"""What the local control plane costs: start-up time, resident memory and idle CPU per component.

``python tests/bench/control_plane_cost.py [--api-server-only] [--idle-seconds 30]`` starts one
LocalCluster (as the test session does, CRDs included), then samples every component's RSS and the
CPU seconds it used while nobody talks to it. The figures in docs/benchmarks.md come from this script;
not part of `make test` (it measures, it asserts nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from datajax_devtools.localcluster import LocalCluster

REPO = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-server-only", action="store_true", help="etcd + kube-apiserver, as before #16")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    cluster = LocalCluster(
        crd_paths=[REPO / "crds", REPO / "tests" / "crds"], controllers=not args.api_server_only
    )
    cluster.start()
    try:
        pids = cluster.component_pids()
        before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        time.sleep(args.idle_seconds)
        result = {
            "startup_seconds": {k: round(v, 2) for k, v in cluster.startup_seconds.items()},
            "rss_mib": {name: round(_rss_mib(pid), 1) for name, pid in pids.items()},
            "idle_cpu_percent": {
                name: round(100 * (_cpu_seconds(pid) - before[name]) / args.idle_seconds, 1)
                for name, pid in pids.items()
            },
        }
        result["rss_mib_total"] = round(sum(result["rss_mib"].values()), 1)  # type: ignore[arg-type]
        print(json.dumps(result, indent=2))
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
