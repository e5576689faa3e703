"""kwok's configuration: which nodes it plays kubelet for, the pod IP range, and the lifecycle stages.

kwok (sigs.k8s.io/kwok, cmd/kwok) changes Node and Pod status as a kubelet would, driven by ``Stage``
objects (sigs.k8s.io/kwok pkg/apis/v1alpha1/stage_types.go) given here in its config file. The stages
are ours, written for what this project needs to see:

- node-ready: a node it manages becomes Ready at once, keeping the capacity and allocatable it was
  created with (nodepools.py), so the scheduler may place pods on it;
- pod-running: a pod bound to such a node gets a pod IP from ``cidr`` and phase Running, but is not Ready
  yet: its endpoint is listed as not ready, as a TPU pod's is while vLLM loads weights and XLA compiles;
- pod-ready: after ``ready_delay`` the pod becomes Ready (the stand-in for TPU warm-up and compile);
- pod-delete: a pod being deleted is removed (after the grace the kubelet would give, here none).

No node heartbeats and no node leases: no node-lifecycle controller runs (see cluster.py), so nothing
would ever read them, and each would cost a write per node every few seconds.
"""

from __future__ import annotations

from typing import Any

import yaml

from .nodepools import KWOK_ANNOTATION

_NODE_READY = """\
{{ $now := Now }}
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type | Quote }}
{{ end }}
addresses: {{ YAML .status.addresses 1 }}
allocatable: {{ YAML .status.allocatable 1 }}
capacity: {{ YAML .status.capacity 1 }}
nodeInfo:
  architecture: amd64
  operatingSystem: linux
  kubeletVersion: {{ printf "kwok-%s" Version | Quote }}
  kubeProxyVersion: {{ printf "kwok-%s" Version | Quote }}
  containerRuntimeVersion: {{ printf "kwok-%s" Version | Quote }}
  kernelVersion: {{ printf "kwok-%s" Version | Quote }}
  bootID: ""
  machineID: ""
  osImage: ""
  systemUUID: ""
phase: Running
"""

_CONTAINER_STATUSES = """\
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: READY
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
"""

_POD_RUNNING = (
    """\
{{ $now := Now }}
conditions:
- {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- type: ContainersReady
  status: "False"
  reason: ContainersNotReady
  message: warming up (simulated TPU warm-up and XLA compile)
  lastTransitionTime: {{ $now | Quote }}
- type: Ready
  status: "False"
  reason: ContainersNotReady
  message: warming up (simulated TPU warm-up and XLA compile)
  lastTransitionTime: {{ $now | Quote }}
"""
    + _CONTAINER_STATUSES.replace("READY", "false")
    + """\
{{ with NodeIPsWith .spec.nodeName }}
hostIP: {{ index . 0 | Quote }}
hostIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
{{ with PodIPsWith .spec.nodeName false ( or .metadata.uid "" ) ( or .metadata.name "" ) \
( or .metadata.namespace "" ) }}
podIP: {{ index . 0 | Quote }}
podIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""
)

_POD_READY = """\
{{ $now := Now }}
conditions:
- {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
""" + _CONTAINER_STATUSES.replace("READY", "true")


def _stage(name: str, kind: str, expressions: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": kind},
            "selector": {"matchExpressions": expressions},
            **spec,
        },
    }


_NOT_DELETING = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
_NOT_READY = {
    "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
    "operator": "NotIn",
    "values": ["True"],
}


def config_documents(cidr: str, ready_delay_seconds: float) -> list[dict[str, Any]]:
    """The documents of kwok's ``--config`` file."""
    ready_ms = max(0, round(ready_delay_seconds * 1000))
    return [
        {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            "options": {
                "cidr": cidr,
                "manageNodesWithAnnotationSelector": f"{KWOK_ANNOTATION}=fake",
                "nodeLeaseDurationSeconds": 0,
                # a config file gets no defaults for these (kwok then refuses to start)
                "podPlayStageParallelism": 2,
                "nodePlayStageParallelism": 2,
                "nodeLeaseParallelism": 1,
                "podsOnNodeSyncParallelism": 1,
                "enableProfilingHandler": False,
                "enableDebuggingHandlers": False,
            },
        },
        _stage(
            "node-ready",
            "Node",
            [_NOT_READY],
            next={"statusTemplate": _NODE_READY},
        ),
        _stage(
            "pod-running",
            "Pod",
            [
                _NOT_DELETING,
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
                {"key": ".status.podIP", "operator": "DoesNotExist"},
            ],
            next={"statusTemplate": _POD_RUNNING},
        ),
        _stage(
            "pod-ready",
            "Pod",
            [
                _NOT_DELETING,
                {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                _NOT_READY,
            ],
            delay={"durationMilliseconds": ready_ms},
            next={"statusTemplate": _POD_READY},
        ),
        _stage(
            "pod-delete",
            "Pod",
            [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
            next={"delete": True},
        ),
    ]


def config_text(cidr: str, ready_delay_seconds: float) -> str:
    return yaml.safe_dump_all(config_documents(cidr, ready_delay_seconds), sort_keys=False)


RBAC: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "datajax-localcluster:kwok"},
        # what kwok needs to play kubelet (after sigs.k8s.io/kwok kustomize/rbac/role.yaml, less its CRDs)
        "rules": [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["nodes/status", "pods/status"], "verbs": ["patch", "update"]},
            {
                "apiGroups": [""],
                "resources": ["pods"],
                "verbs": ["get", "list", "watch", "patch", "update", "delete"],
            },
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch", "update"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "datajax-localcluster:kwok"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "datajax-localcluster:kwok",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:kwok"}],
    },
]
"""kwok's own identity (a token-file user) and the least it needs."""
