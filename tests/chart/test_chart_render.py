"""The chart renders, lints and carries least-privilege RBAC and a hardened operator pod.

These run the real `helm` against the chart directory: every ci/ scenario, the schema's
rejections, and the properties a platform team audits (security context, RBAC verbs, names).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.chartlib import (
    CHART,
    CI_VALUES,
    KUBE_VERSIONS,
    NAMESPACE,
    REPO,
    Renderer,
    by_kind,
    one,
    run,
)

pytestmark = pytest.mark.chart

FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}
RBAC_KINDS = ("ClusterRole", "Role")

# The grants, verb by verb, that the operator was measured to use (API server audit log; see
# templates/rbac.yaml); test_least_privilege.py runs the operator with exactly these.
_APPLIED = {"get", "list", "watch", "create", "patch", "delete"}
NAMESPACED_GRANTS = {
    ("datajax.dev", "datajaxmodels"): {"get", "list", "watch", "patch"},
    ("datajax.dev", "datajaxmodels/status"): {"patch"},
    ("apps", "deployments"): _APPLIED,
    ("leaderworkerset.x-k8s.io", "leaderworkersets"): _APPLIED,
    ("", "services"): _APPLIED,
    ("", "configmaps"): {"get", "list", "create", "patch", "delete"},
    ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch"},
    ("", "pods"): {"list"},
    ("batch", "jobs"): _APPLIED,  # the compile gate's Jobs (spec.plan.compileGate)
    ("", "events"): {"create"},
}
CLUSTER_GRANTS = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}


def _rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for kind in RBAC_KINDS for role in by_kind(docs, kind) for r in role["rules"]]


def _grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == "0.1.0"
    assert chart["kubeVersion"] == ">=1.29.0-0"


def test_helm_template_as_a_user_runs_it(renderer: Renderer, tmp_path: Path) -> None:
    """`helm template t charts/datajax-operator`, no flags, from the repository root: helm's default
    capabilities must satisfy the chart's kubeVersion floor, as an official helm release's do."""
    proc = subprocess.run(
        [renderer.helm, "template", "t", "charts/datajax-operator"],
        cwd=REPO,
        env=renderer.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert one([d for d in yaml.safe_load_all(proc.stdout) if d], "Deployment")["metadata"]["name"]
    # helm's own default Kubernetes version, as `.Capabilities` reports it to a chart
    probe = tmp_path / "probe"
    (probe / "templates").mkdir(parents=True)
    (probe / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (probe / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe}\n"
        "data: {kube: {{ .Capabilities.KubeVersion.Version | quote }}}\n"
    )
    shown = run([renderer.helm, "template", "p", str(probe)], renderer.env)
    assert shown.returncode == 0, shown.stderr
    default = yaml.safe_load(shown.stdout)["data"]["kube"]
    floor = tuple(int(x) for x in KUBE_VERSIONS[0].split("."))
    assert tuple(int(x) for x in default.lstrip("v").split(".")[:3]) >= floor, default


@pytest.mark.parametrize("kube_version", [None, *KUBE_VERSIONS])
def test_helm_lint_strict(renderer: Renderer, kube_version: str | None) -> None:
    cmd = [renderer.helm, "lint", str(CHART), "--strict"]
    if kube_version is not None:  # None: helm's default, as a user lints
        cmd += ["--kube-version", kube_version]
    for values in CI_VALUES:
        proc = run([*cmd, "-f", str(values)], renderer.env)
        assert proc.returncode == 0, f"helm lint {values.name}:\n{proc.stdout}\n{proc.stderr}"
        assert "0 chart(s) failed" in proc.stdout


def test_kube_version_floor_is_enforced(renderer: Renderer) -> None:
    proc = renderer.run(kube_version="1.28.9")
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr or "incompatible" in proc.stderr


def test_ci_scenarios_exist() -> None:
    names = {p.name for p in CI_VALUES}
    assert {"default-values.yaml", "namespaced-values.yaml", "gmp-values.yaml"} <= names
    assert {"dashboards-off-values.yaml", "peering-values.yaml"} <= names


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_every_ci_scenario_renders_hardened(renderer: Renderer, values: Path) -> None:
    docs = renderer.render([values])
    for doc in docs:
        name = doc["metadata"]["name"]
        assert len(name) <= 63, f"{doc['kind']} name longer than 63: {name}"
        for key, value in doc["metadata"].get("labels", {}).items():
            assert len(str(value)) <= 63, f"label {key}={value} too long"
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    assert probe["port"] == "health"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/etc/datajax-operator"] == "config"
    assert "--config=/etc/datajax-operator/config.yaml" in container["args"]
    assert container["args"][0] == "run"
    assert deployment["spec"]["replicas"] <= 1
    assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]
    for rule in _rules(docs):
        assert not FORBIDDEN_VERBS & set(rule["verbs"]), rule
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert "secrets" not in rule["resources"], rule


def test_config_is_the_values_and_changes_roll_the_pod(renderer: Renderer) -> None:
    docs = renderer.render()
    cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    config = yaml.safe_load(cm["data"]["config.yaml"])
    assert config["runtimeImage"] == "datajax/datajax-runtime:0.1.0"
    assert config["prices"]["v6e"] == {"on-demand": 2.7, "spot": 0.544, "cud-1y": 1.89, "cud-3y": 1.22}
    assert config["prices"]["v5e"] == {"on-demand": 1.2, "spot": 0.245}
    assert config["prices"]["v5p"] == {"on-demand": 4.2, "spot": 0.836}
    assert config["sidecarPort"] == 9400 and config["sidecarInterval"] == "5s"
    assert not config["vllmImage"].endswith(":latest")

    def checksum(sets: list[str]) -> str:
        dep = one(renderer.render(sets=sets), "Deployment")
        return str(dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum([]) != checksum(["config.prices.v6e.on-demand=3"])
    assert checksum([]) == checksum(["podLabels.team=x"])


def test_cluster_mode_rbac_is_exactly_what_the_operator_uses(renderer: Renderer) -> None:
    docs = renderer.render()
    assert not by_kind(docs, "Role") and not by_kind(docs, "RoleBinding")
    role = one(docs, "ClusterRole")
    grants = _grants(role["rules"])
    assert grants == {**NAMESPACED_GRANTS, **CLUSTER_GRANTS}
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    sa = one(docs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args
    assert not any(a.startswith("--namespace") or a.startswith("--peering") for a in args)


def test_namespaced_mode_has_a_role_per_namespace_and_only_crds_cluster_wide(renderer: Renderer) -> None:
    docs = renderer.render([CHART / "ci" / "namespaced-values.yaml"])
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for b in bindings:
        assert b["subjects"][0]["namespace"] == NAMESPACE
    cluster = _grants(one(docs, "ClusterRole")["rules"])
    assert cluster == {**CLUSTER_GRANTS, ("", "namespaces"): {"list", "watch"}}
    for role in roles:
        assert _grants(role["rules"]) == NAMESPACED_GRANTS
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    assert "--all-namespaces" not in args
    monitor = next(d for d in by_kind(docs, "ServiceMonitor") if d["metadata"]["name"].endswith("-models"))
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def test_peering_adds_peering_objects_and_their_verbs(renderer: Renderer) -> None:
    docs = renderer.render([CHART / "ci" / "peering-values.yaml"])
    peering = one(docs, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "datajax"
    assert _grants(one(docs, "ClusterRole")["rules"])[("kopf.dev", "clusterkopfpeerings")] == {
        "get",
        "list",
        "watch",
        "patch",
    }
    deployment = one(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--peering=datajax" in container["args"]
    # each replica its own priority (kopf pauses equal ones), from the POD_NAME the pod is given
    assert "--priority=pod-name" in container["args"] and "--peering-lifetime=60" in container["args"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    assert container["image"].startswith("datajax/datajax-operator@sha256:")

    docs = renderer.render([CHART / "ci" / "peering-namespaced-values.yaml"])
    (peering,) = by_kind(docs, "KopfPeering")
    assert peering["metadata"]["namespace"] == "serving"
    assert _grants(one(docs, "Role")["rules"])[("kopf.dev", "kopfpeerings")] == {
        "get",
        "list",
        "watch",
        "patch",
    }
    assert not by_kind(docs, "ClusterKopfPeering")

    assert not by_kind(renderer.render(), "ClusterKopfPeering")


def test_monitoring_switches(renderer: Renderer) -> None:
    default = renderer.render()
    for kind in ("ServiceMonitor", "PodMonitoring", "ClusterPodMonitoring", "PrometheusRule", "ClusterRules"):
        assert not by_kind(default, kind), f"{kind} rendered with monitoring off"
    assert one(default, "Service")["spec"]["ports"][0]["name"] == "metrics"

    gmp = renderer.render([CHART / "ci" / "gmp-values.yaml"])
    cpms = {d["metadata"]["name"]: d for d in by_kind(gmp, "ClusterPodMonitoring")}
    assert set(cpms) == {"djx-datajax-operator-sidecar", "djx-datajax-operator-vllm"}
    sidecar = cpms["djx-datajax-operator-sidecar"]["spec"]
    assert sidecar["selector"]["matchLabels"] == {"app.kubernetes.io/name": "datajax-model"}
    assert sidecar["endpoints"][0]["port"] == "metrics"
    assert {"from": "datajax.dev/tpu-generation", "to": "tpu_generation"} in sidecar["targetLabels"][
        "fromPod"
    ]
    assert {"from": "app.kubernetes.io/instance", "to": "model"} in sidecar["targetLabels"]["fromPod"]
    assert cpms["djx-datajax-operator-vllm"]["spec"]["endpoints"][0]["port"] == "http"
    op = one(gmp, "PodMonitoring")
    assert op["metadata"]["name"] == "djx-datajax-operator-operator"
    assert op["metadata"]["namespace"] == NAMESPACE
    one(gmp, "ClusterRules")

    docs = renderer.render(sets=["monitoring.serviceMonitor.enabled=true"])
    monitors = {d["metadata"]["name"]: d for d in by_kind(docs, "ServiceMonitor")}
    models = monitors["djx-datajax-operator-models"]["spec"]
    assert models["namespaceSelector"] == {"any": True}
    assert [e["port"] for e in models["endpoints"]] == ["metrics", "http"]
    relabel = models["endpoints"][0]["relabelings"]
    assert relabel[0] == {
        "sourceLabels": ["__meta_kubernetes_pod_container_port_name"],
        "regex": "metrics",
        "action": "keep",
    }
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_label_datajax_dev_tpu_generation"],
        "targetLabel": "tpu_generation",
        "action": "replace",
    } in relabel
    assert relabel[-1] == {
        "targetLabel": "job",
        "replacement": "djx-datajax-operator-sidecar",
        "action": "replace",
    }
    operator = monitors["djx-datajax-operator-operator"]["spec"]
    assert operator["endpoints"][0]["port"] == "metrics"
    assert operator["endpoints"][0]["relabelings"][0]["replacement"] == "djx-datajax-operator-operator"

    off = renderer.render([CHART / "ci" / "dashboards-off-values.yaml"])
    (models_monitor,) = [d for d in by_kind(off, "ServiceMonitor")]
    assert [e["port"] for e in models_monitor["spec"]["endpoints"]] == ["metrics"]
    assert [d["metadata"]["name"] for d in by_kind(off, "ClusterPodMonitoring")] == [
        "djx-datajax-operator-sidecar"
    ]
    assert not by_kind(off, "PodMonitoring")


def test_dashboards_configmaps(renderer: Renderer) -> None:
    docs = renderer.render([CHART / "ci" / "gmp-values.yaml"])
    boards = [
        d for d in by_kind(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    assert len(boards) == 2
    for cm in boards:
        assert cm["metadata"]["annotations"] == {"grafana_folder": "DataJAX"}
        ((key, text),) = cm["data"].items()
        shipped = (CHART / "dashboards" / key).read_text()
        assert json.loads(text) == json.loads(shipped)
    docs = renderer.render(
        sets=["dashboards.label=my_dash", "dashboards.labelValue=yes", "dashboards.namespace=grafana"]
    )
    boards = [d for d in by_kind(docs, "ConfigMap") if "my_dash" in d["metadata"]["labels"]]
    assert len(boards) == 2 and all(b["metadata"]["namespace"] == "grafana" for b in boards)
    assert all(b["metadata"]["labels"]["my_dash"] == "yes" for b in boards)
    off = renderer.render([CHART / "ci" / "dashboards-off-values.yaml"])
    assert not [d for d in by_kind(off, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]


def test_helm_test_hook_is_restricted_pss(renderer: Renderer) -> None:
    docs = renderer.render()
    (pod,) = [d for d in by_kind(docs, "Pod") if d["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert not sc.get("privileged")
        script = c["args"][0]
        assert 'base = "http://djx-datajax-operator.datajax-system.svc"' in script
        assert ':8080/healthz"' in script and ':9090/metrics"' in script
        assert "datajax_operator_reconciles_total" in script
        compile(script, "helm-test-probe", "exec")
    for vol in spec.get("volumes", []):
        assert "hostPath" not in vol


def test_names_truncate_to_63(renderer: Renderer) -> None:
    long = "r" * 60
    proc = renderer.run(extra=["--set", f"fullnameOverride={long}-extra-long-name"])
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    names = {d["metadata"]["name"] for d in docs}
    assert all(len(n) <= 63 and not n.endswith("-") for n in names), names
    # Suffixed names stay distinct after truncation (config, models monitor, test pod, ...).
    assert any(n.endswith("-config") for n in names) and any(n.endswith("-test") for n in names)


# `--set-json` so numbers stay numbers (plain `--set` turns 1.5 into a string).
BAD_VALUES = [
    ("replicas=6", "replicas"),
    ("leaderElection.lifetimeSeconds=1", "lifetimeSeconds"),
    ('image.tag="latest"', "tag"),
    ('config.vllmImage="vllm/vllm-tpu:latest"', "vllmImage"),
    ("config.prices.v6e.on-demand=-1", "on-demand"),
    ('config.prices.v9x={"on-demand": 1}', "v9x"),
    ("config.prices.v6e.reserved=1", "reserved"),
    ('config.sidecarInterval="ten seconds"', "sidecarInterval"),
    ("unknownKey=1", "unknownKey"),
    ("monitoring.serviceMonitor.enable=true", "enable"),
    ("securityContext.readOnlyRootFilesystem=false", "readOnlyRootFilesystem"),
    ('alerts.costCeiling.severity="sev1"', "severity"),
    ("alerts.prefixCacheHitRatio.threshold=1.5", "threshold"),
    ('logFormat="xml"', "logFormat"),
    ('watch.namespaces=["Bad_NS"]', "namespaces"),
    ('config.sidecarWindow="10m"', "sidecarWindow"),
]


def test_several_replicas_peer_and_roll_one_at_a_time(renderer: Renderer) -> None:
    docs = renderer.render([CHART / "ci" / "peering-values.yaml"], extra=["--set-json", "replicas=2"])
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert (
        one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"].count(
            "--priority=pod-name"
        )
        == 1
    )
    # without peering, every replica would act on every model: refused, saying why
    proc = renderer.run(extra=["--set-json", "replicas=2"])
    assert proc.returncode != 0
    assert "replicas above 1 need leaderElection.enabled=true" in proc.stderr, proc.stderr
    single = one(renderer.render([CHART / "ci" / "peering-values.yaml"]), "Deployment")
    assert single["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(("value", "field"), BAD_VALUES, ids=[v for v, _ in BAD_VALUES])
def test_schema_rejects_bad_values(renderer: Renderer, value: str, field: str) -> None:
    proc = renderer.run(extra=["--set-json", value])
    assert proc.returncode != 0, f"accepted {value}"
    assert "schema" in proc.stderr.lower(), proc.stderr
    assert field in proc.stderr, proc.stderr


def test_schema_accepts_good_overrides(renderer: Renderer) -> None:
    proc = renderer.run(
        extra=["--set-json", 'config.prices={"v6e": {"on-demand": 2.5}}', "--set-json", "replicas=0"]
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["watch.allNamespaces=false"], "watch.namespaces must list at least one namespace"),
        (["watch.namespaces={a}"], "watch.namespaces must be empty"),
    ],
)
def test_inconsistent_watch_values_fail(renderer: Renderer, sets: list[str], message: str) -> None:
    proc = renderer.run(sets=sets)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_schema_is_strict_draft07() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    # Kubernetes objects passed through verbatim: the schema pins the hardening keys, not every field.
    pass_through = {"values.podSecurityContext", "values.securityContext"}

    def walk(node: dict[str, Any], value: Any, path: str) -> None:
        if path in pass_through:
            return
        if node.get("type") == "object" and "properties" in node and isinstance(value, dict):
            assert node.get("additionalProperties") is False, f"{path} is not strict"
            for key, sub in value.items():
                assert key in node["properties"], f"{path}.{key} missing from the schema"
                walk(node["properties"][key], sub, f"{path}.{key}")

    walk(schema, values, "values")


def test_every_value_is_documented() -> None:
    """Every leaf key in values.yaml has a comment right above it, or sits inside a documented map."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- ") or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = i > 0 and lines[i - 1].strip().startswith("#")
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        is_parent = stripped.endswith(":") and len(nxt) - len(nxt.lstrip()) > indent
        if not is_parent and not documented and not any(doc for _, doc in stack):
            undocumented.append(stripped)
        stack.append((indent, documented))
    assert not undocumented, f"undocumented values: {undocumented}"


def test_chart_crds_match_repository_crds() -> None:
    repo_crds = REPO / "crds"
    chart_crds = CHART / "crds"
    generated = sorted(p.name for p in repo_crds.glob("*.yaml")) if repo_crds.is_dir() else []
    assert "datajaxmodels.datajax.dev.yaml" in generated, (
        "crds/datajaxmodels.datajax.dev.yaml is missing: run `make crd`"
    )
    for name in generated:
        assert (chart_crds / name).read_bytes() == (repo_crds / name).read_bytes(), (
            f"charts/datajax-operator/crds/{name} differs from crds/{name}: copy it over"
        )
    # The only extra CRDs the chart carries are kopf's peering objects (not ours to generate).
    extra = {p.name for p in chart_crds.glob("*.yaml")} - set(generated)
    assert extra == {"kopf-peering.kopf.dev.yaml"}


def test_rendered_config_loads_in_the_operator(renderer: Renderer, tmp_path: Path) -> None:
    """The ConfigMap's config.yaml is accepted by the operator's own loader (it forbids unknown keys)."""
    from datajax_operator.plan.config import load_config

    for values in CI_VALUES:
        docs = renderer.render([values])
        cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
        path = tmp_path / f"{values.stem}.yaml"
        path.write_text(cm["data"]["config.yaml"])
        config = load_config(path)
        assert config.prices["v6e"]["on-demand"] == 2.7
        assert config.runtime_image == yaml.safe_load(path.read_text())["runtimeImage"]
