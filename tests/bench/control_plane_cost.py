"""What the local control plane costs: start-up time, resident memory and idle CPU per component.

``python tests/bench/control_plane_cost.py [--api-server-only] [--idle-seconds 30]`` starts one
LocalCluster (as the test session does, CRDs included), then samples every component's RSS and the
CPU seconds it used while nobody talks to it. The figures in docs/benchmarks.md come from this script;
not part of `make test` (it measures, it asserts nothing).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from procs import cpu_seconds, rss_bytes

from datajax_devtools.localcluster import LocalCluster

REPO = Path(__file__).resolve().parents[2]


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
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        time.sleep(args.idle_seconds)  # the idle window is what is measured (no condition to wait for)
        result = {
            "startup_seconds": {k: round(v, 2) for k, v in cluster.startup_seconds.items()},
            "rss_mib": {name: round(rss_bytes(pid) / 2**20, 1) for name, pid in pids.items()},
            "idle_cpu_percent": {
                name: round(100 * (cpu_seconds(pid) - before[name]) / args.idle_seconds, 1)
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
