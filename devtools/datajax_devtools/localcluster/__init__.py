"""Dev tool (outside the operator's layers): a real etcd + kube-apiserver on 127.0.0.1.

Used by the integration, chart and e2e test tiers and by ``make cluster``.
"""

from .binaries import MissingToolError, find_binary, tools_bin_dir
from .cluster import ControlPlaneError, LocalCluster, die_with_parent, free_port, stop_process

__all__ = [
    "ControlPlaneError",
    "LocalCluster",
    "MissingToolError",
    "die_with_parent",
    "find_binary",
    "free_port",
    "stop_process",
    "tools_bin_dir",
]
