"""``make cluster``: a control plane in the foreground for a person to poke at with kubectl.

Runs until Ctrl-C or SIGTERM, then stops every component and removes the kubeconfig, so a stale file
never points at a dead server.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from . import nodepools
from .cluster import ControlPlaneError, LocalCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datajax_devtools.localcluster", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, default=Path(".cluster/kubeconfig"))
    parser.add_argument(
        "--crd", type=Path, action="append", default=[], help="CRD file or directory of *.yaml (repeatable)"
    )
    parser.add_argument(
        "--pod-ready-delay",
        type=float,
        default=5.0,
        help="seconds a pod runs before kwok marks it Ready (stands for TPU warm-up and XLA compile)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        print(f"\n{signal.Signals(signum).name}: stopping the control plane", flush=True)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    workdir = args.kubeconfig.resolve().parent / "state"
    shutil.rmtree(workdir, ignore_errors=True)  # etcd data of a run that was killed hard
    cluster = LocalCluster(
        crd_paths=[p for p in args.crd if p.exists()],
        workdir=workdir,
        kubeconfig=args.kubeconfig,
        pod_ready_delay=args.pod_ready_delay,
    )
    try:
        cluster.start()
        print(f"\nAPI server {cluster.server}: {cluster.startup_summary()} (logs in {workdir})", flush=True)
        print(f"TPU nodes: kubectl get nodes -L {nodepools.TOPOLOGY_LABEL}", flush=True)
        print(f"export KUBECONFIG={args.kubeconfig.resolve()}", flush=True)
        print("Ctrl-C to stop.", flush=True)
        while not stop.wait(1.0):
            cluster.check_alive()
    except ControlPlaneError as err:
        print(f"control plane failed: {err}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        args.kubeconfig.unlink(missing_ok=True)
        print("stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
