"""Least privilege, proven: the operator runs with nothing but the chart's ServiceAccount.

`helm install` creates the ServiceAccount and its RBAC in the real API server; the TokenRequest API
issues a token; a kubeconfig holds only that token; `datajax-operator run` starts as a subprocess with
the command line the installed Deployment carries (config path, ports and namespaces as the chart
renders them). It must reconcile models end to end (children, status, Events) without one refused
request, and SelfSubjectAccessReviews asked with the same token show what it cannot do: read Secrets,
touch kinds it does not manage, escalate, bind, impersonate, or write outside its namespaces.

Both RBAC shapes run: cluster mode (ClusterRole), standalone and with kopf peering
(ClusterKopfPeering), and namespaced mode (a Role per watched namespace) with peering (KopfPeering).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from datajax_devtools.localcluster import free_port
from tests.chart.chartlib import REPO, binary, one
from tests.chart.releases import Release, can_i, existing, service_account_kubeconfig, unique
from tests.polling import wait_for

pytestmark = pytest.mark.chart

GROUP, VERSION, PLURAL = "datajax.dev", "v1alpha1", "datajaxmodels"
EXAMPLES = {
    "llama3-8b": ("Deployment", "apps"),
    "llama3-70b-multihost": ("LeaderWorkerSet", "leaderworkerset.x-k8s.io"),
}
# Resources the operator never manages: no verb on them may be allowed anywhere.
UNMANAGED = [
    ("", "secrets"),
    ("", "serviceaccounts"),
    ("", "persistentvolumeclaims"),
    ("apps", "statefulsets"),
    ("batch", "cronjobs"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("networking.k8s.io", "networkpolicies"),
    ("monitoring.coreos.com", "servicemonitors"),
]
CLUSTER_SCOPED = [
    ("", "nodes"),
    ("", "persistentvolumes"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("certificates.k8s.io", "certificatesigningrequests"),
    ("storage.k8s.io", "storageclasses"),
]
EVERY_VERB = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]


@dataclass
class Mode:
    name: str
    sets: list[str]
    peering: bool


MODES = [
    Mode("cluster", [], peering=False),
    Mode("cluster-peering", ["leaderElection.enabled=true"], peering=True),
    # watch.namespaces is filled in per test (unique names).
    Mode("namespaced", ["watch.allNamespaces=false", "leaderElection.enabled=true"], peering=True),
]


@dataclass
class Setup:
    release: Release
    watched: str
    other: str
    mode: Mode
    sa_kubeconfig: Path
    sa_client: Any


@pytest.fixture
def sole_operator() -> None:
    """The proof needs this operator to be the only one: an in-process operator of the integration
    tests (a thread of that name) would reconcile the same models with admin rights."""
    others = [t.name for t in threading.enumerate() if t.name == "datajax-operator" and t.is_alive()]
    assert not others, "an in-process operator is running in this session; run the chart tests first"


@pytest.fixture(params=MODES, ids=lambda m: m.name)
def setup(  # noqa: PLR0917 (pytest fixtures arrive as parameters)
    request: pytest.FixtureRequest,
    helm: str,
    helm_home: dict[str, str],
    kubeconfig: Path,
    admin_client: Any,
    tmp_path: Path,
    sole_operator: None,
) -> Iterator[Setup]:
    mode: Mode = request.param
    core = client.CoreV1Api(admin_client)
    release = Release(helm, helm_home, kubeconfig, unique("lp"), unique("lp-system"))
    watched, other = unique("watched"), unique("other")
    for ns in (release.namespace, watched, other):
        core.create_namespace({"metadata": {"name": ns}})
    sets = [*mode.sets, f"watch.namespaces={{{watched}}}"] if mode.name == "namespaced" else mode.sets
    release.install(sets=sets)
    sa = one(release.manifest(), "ServiceAccount")["metadata"]["name"]
    token = core.create_namespaced_service_account_token(
        sa, release.namespace, {"spec": {"expirationSeconds": 3600}}
    ).status.token
    sa_kubeconfig = service_account_kubeconfig(kubeconfig, token, tmp_path / "operator.kubeconfig")
    sa_client = config.new_client_from_config(config_file=str(sa_kubeconfig))
    try:
        yield Setup(release, watched, other, mode, sa_kubeconfig, sa_client)
    finally:
        sa_client.close()
        release.uninstall()


@dataclass
class OperatorProcess:
    popen: subprocess.Popen[bytes]
    log: Path
    metrics_port: int

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def metric(self, sample: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as rsp:
            for line in rsp.read().decode().splitlines():
                if line.split(" ")[0] == sample:
                    return float(line.split(" ")[1])
        return 0.0


def wait_for_operator(predicate: Any, what: str, proc: OperatorProcess, timeout: float = 30.0) -> Any:
    """Wait while the operator runs; a failure carries the tail of its log."""
    return wait_for(
        predicate,
        timeout,
        what,
        abandon=lambda: proc.popen.poll() is not None,
        explain=lambda: f"operator log:\n{proc.log_text()[-3000:]}",
    )


def operator_argv(setup: Setup, admin_client: Any, workdir: Path) -> tuple[list[str], int, int]:
    """The installed Deployment's command line, run here: the config file the ConfigMap holds, written
    where the mount points, free loopback ports, and the ServiceAccount's kubeconfig."""
    apps = client.AppsV1Api(admin_client)
    deployment = apps.api_client.sanitize_for_serialization(
        apps.read_namespaced_deployment(
            one(setup.release.manifest(), "Deployment")["metadata"]["name"], setup.release.namespace
        )
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    configmap = client.CoreV1Api(admin_client).read_namespaced_config_map(
        volume["configMap"]["name"], setup.release.namespace
    )
    local = workdir / "config"
    local.mkdir()
    for item in volume["configMap"]["items"]:
        (local / item["path"]).write_text(configmap.data[item["key"]])
    liveness, metrics = free_port(), free_port()
    replaced = {
        "--config": lambda value: value.replace(mount["mountPath"], str(local), 1),
        "--liveness-port": lambda _: str(liveness),
        "--metrics-port": lambda _: str(metrics),
    }
    args = []
    for arg in container["args"]:
        flag, _, value = arg.partition("=")
        args.append(f"{flag}={replaced[flag](value)}" if flag in replaced else arg)
    (command,) = container["command"]
    executable = Path(sys.executable).with_name(command)
    extra = [f"--kubeconfig={setup.sa_kubeconfig}", "--bind-address=127.0.0.1", "--resync-seconds=2"]
    return [str(executable), *args, *extra], liveness, metrics


@pytest.fixture
def operator(setup: Setup, admin_client: Any, tmp_path: Path) -> Iterator[OperatorProcess]:
    argv, liveness, metrics = operator_argv(setup, admin_client, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env["KUBECONFIG"] = str(setup.sa_kubeconfig)
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    proc = OperatorProcess(popen, log, metrics)

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=2) as rsp:
                return rsp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    try:
        wait_for_operator(healthy, "healthy /healthz", proc, timeout=60)
        yield proc
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def _model(name: str, namespace: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "examples" / f"{name}-v6e.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    return doc


def test_operator_reconciles_with_only_its_service_account(
    setup: Setup, operator: OperatorProcess, admin_client: Any
) -> None:
    custom = client.CustomObjectsApi(admin_client)
    core = client.CoreV1Api(admin_client)
    namespaced = setup.mode.name == "namespaced"
    if namespaced:  # created first: a watch on it would have handled it before the others
        custom.create_namespaced_custom_object(
            GROUP, VERSION, setup.other, PLURAL, _model("llama3-8b", setup.other)
        )
    for name in EXAMPLES:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, setup.watched, PLURAL, _model(name, setup.watched)
        )

    for name, (kind, group) in EXAMPLES.items():
        model = wait_for_operator(
            lambda name=name: (
                (
                    custom.get_namespaced_custom_object(GROUP, VERSION, setup.watched, PLURAL, name)
                    .get("status", {})
                    .get("observedGeneration")
                )
                and custom.get_namespaced_custom_object(GROUP, VERSION, setup.watched, PLURAL, name)
            ),
            f"status of {name}",
            operator,
        )
        status = model["status"]
        assert status["placement"]["workload"] == kind
        assert {c["type"]: c["status"] for c in status["conditions"]}["SpecValid"] == "True"
        children = existing(
            binary("kubectl"),
            setup.release.kubeconfig,
            [
                {
                    "apiVersion": f"{group}/v1",
                    "kind": kind,
                    "metadata": {"name": name, "namespace": setup.watched},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name, "namespace": setup.watched},
                },
            ],
        )
        assert sorted(c["kind"] for c in children) == sorted([kind, "Service"])
        for child in children:
            (owner,) = child["metadata"]["ownerReferences"]
            assert owner["uid"] == model["metadata"]["uid"]

    # Events: the operator posts one for what a person acts on (not for a new model's first,
    # expected states), so a spec the planner rejects is what makes it post one here.
    rejected = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataJaxModel",
        "metadata": {"name": "too-big", "namespace": setup.watched},
        "spec": {
            "model": {"name": "org/huge", "parametersBillions": 70, "dtype": "bfloat16"},
            "tpu": {"generation": "v5e", "topology": "2x4"},
        },
    }
    custom.create_namespaced_custom_object(GROUP, VERSION, setup.watched, PLURAL, rejected)
    events = wait_for_operator(
        lambda: core.list_namespaced_event(setup.watched, field_selector="involvedObject.name=too-big").items,
        "Events on too-big",
        operator,
    )
    assert {(e.type, e.reason, e.source.component) for e in events} == {
        ("Warning", "WeightsExceedHBM", "datajax-operator")
    }

    assert operator.metric('datajax_operator_reconciles_total{result="changed"}') >= len(EXAMPLES)
    assert operator.metric("datajax_operator_reconcile_errors_total") == 0
    log = operator.log_text()
    for refused in ("Forbidden", "forbidden"):
        assert refused not in log, f"a request was refused:\n{log[-3000:]}"
    if setup.mode.peering:  # the keep-alive landed in the chart's KopfPeering object
        peering = (
            custom.get_namespaced_custom_object(
                "kopf.dev", "v1", setup.watched, "kopfpeerings", "datajax-operator"
            )
            if namespaced
            else custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", "datajax-operator")
        )
        assert peering.get("status"), f"no keep-alive in the peering object: {peering}"

    if namespaced:
        other = custom.get_namespaced_custom_object(GROUP, VERSION, setup.other, PLURAL, "llama3-8b")
        assert "status" not in other, "the operator reconciled a model outside its namespaces"
        assert not client.AppsV1Api(admin_client).list_namespaced_deployment(setup.other).items


def test_service_account_cannot_do_what_it_must_not(setup: Setup) -> None:
    authz = client.AuthorizationV1Api(setup.sa_client)
    namespaced = setup.mode.name == "namespaced"

    # The reviews answer for this identity at all: what it needs is allowed where it works.
    assert can_i(authz, "patch", "deployments", group="apps", namespace=setup.watched)
    assert can_i(authz, "patch", "datajaxmodels", group=GROUP, namespace=setup.watched, subresource="status")
    assert can_i(authz, "create", "events", namespace=setup.watched)
    assert can_i(authz, "watch", "customresourcedefinitions", group="apiextensions.k8s.io")

    allowed = []
    namespaces = [setup.watched, setup.other, setup.release.namespace, "kube-system", None]
    for ns in namespaces:
        for group, resource in UNMANAGED:
            allowed += [
                (v, resource, ns) for v in EVERY_VERB if can_i(authz, v, resource, group=group, namespace=ns)
            ]
        # Pods: listed (why the scheduler left a model's pods Pending), nothing else.
        allowed += [
            (v, "pods", ns) for v in EVERY_VERB if v != "list" and can_i(authz, v, "pods", namespace=ns)
        ]
        # Jobs (the compile gate's): applied, watched, deleted; never updated or bulk-deleted.
        allowed += [
            (v, "jobs", ns)
            for v in ("update", "deletecollection")
            if can_i(authz, v, "jobs", group="batch", namespace=ns)
        ]
        # ConfigMaps: it applies its own settings ConfigMaps; it never watches, updates or bulk-deletes.
        allowed += [
            (v, "configmaps", ns)
            for v in ("watch", "update", "deletecollection")
            if can_i(authz, v, "configmaps", namespace=ns)
        ]
        # Its own kind: read and annotate, never create or delete users' models.
        allowed += [
            (v, PLURAL, ns)
            for v in ("create", "delete", "deletecollection", "update")
            if can_i(authz, v, PLURAL, group=GROUP, namespace=ns)
        ]
        allowed += [
            (v, "pods/" + sub, ns)
            for v, sub in (("create", "exec"), ("create", "portforward"), ("get", "log"))
            if can_i(authz, v, "pods", namespace=ns, subresource=sub)
        ]
        allowed += (
            [("create", "serviceaccounts/token", ns)]
            if can_i(authz, "create", "serviceaccounts", namespace=ns, subresource="token")
            else []
        )
    for group, resource in CLUSTER_SCOPED:
        allowed += [(v, resource, None) for v in EVERY_VERB if can_i(authz, v, resource, group=group)]
    # No escalation: RBAC's own escape hatches, impersonation, CRD and namespace writes.
    for verb, group, resource in [
        ("escalate", "rbac.authorization.k8s.io", "clusterroles"),
        ("bind", "rbac.authorization.k8s.io", "clusterroles"),
        ("escalate", "rbac.authorization.k8s.io", "roles"),
        ("bind", "rbac.authorization.k8s.io", "roles"),
        ("impersonate", "", "users"),
        ("impersonate", "", "groups"),
        ("impersonate", "", "serviceaccounts"),
        ("impersonate", "authentication.k8s.io", "userextras"),
        ("approve", "certificates.k8s.io", "signers"),
    ]:
        allowed += [(verb, resource, None)] if can_i(authz, verb, resource, group=group) else []
    for verb in ("get", "create", "update", "patch", "delete"):
        for group, resource in (("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces")):
            allowed += [(verb, resource, None)] if can_i(authz, verb, resource, group=group) else []
    assert not allowed, f"the operator's ServiceAccount may: {allowed}"

    # Its write verbs reach exactly its namespaces: everywhere in cluster mode, only the watched one
    # in namespaced mode (nothing in the other namespace, nor in its own release namespace).
    for ns in (setup.other, setup.release.namespace):
        for verb, resource, group in [
            ("patch", "deployments", "apps"),
            ("create", "services", ""),
            ("delete", "leaderworkersets", "leaderworkerset.x-k8s.io"),
            ("create", "events", ""),
            ("create", "jobs", "batch"),
            ("list", "datajaxmodels", GROUP),
        ]:
            assert can_i(authz, verb, resource, group=group, namespace=ns) is not namespaced, (
                verb,
                resource,
                ns,
            )
    if namespaced:
        rules = (
            client.AuthorizationV1Api(setup.sa_client)
            .create_self_subject_rules_review({"spec": {"namespace": setup.other}})
            .status.resource_rules
        )
        visible = {res for rule in rules for res in rule.resources or []}
        assert not visible & {"deployments", "services", "events", "datajaxmodels", "leaderworkersets"}, (
            visible
        )


def test_refused_requests_are_refused_for_real(setup: Setup) -> None:
    """Beyond the reviews: the API server answers 403 to the token itself."""
    core = client.CoreV1Api(setup.sa_client)
    for call in (
        lambda: core.list_namespaced_secret(setup.watched),
        core.list_secret_for_all_namespaces,
        core.list_node,
        lambda: core.create_namespaced_pod(
            setup.watched,
            {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "x", "image": "x:1"}]}},
        ),
    ):
        with pytest.raises(client.ApiException) as refused:
            call()
        assert refused.value.status == 403
    if setup.mode.name == "namespaced":
        with pytest.raises(client.ApiException) as refused:
            client.AppsV1Api(setup.sa_client).create_namespaced_deployment(
                setup.other,
                {
                    "metadata": {"name": "x"},
                    "spec": {
                        "selector": {"matchLabels": {"a": "b"}},
                        "template": {
                            "metadata": {"labels": {"a": "b"}},
                            "spec": {"containers": [{"name": "x", "image": "x:1"}]},
                        },
                    },
                },
            )
        assert refused.value.status == 403
