"""The command line the chart gives the operator is one `datajax-operator run` accepts and reads as meant.

Each ci/ scenario is rendered with the real helm and the container's command and args go through the
operator's own argparse parser (`datajax_operator.cli.build_parser`), so a flag renamed on either side,
a mode the parser refuses (`--namespace` with `--all-namespaces`), or a port the probe does not use
fails here rather than in a crash-looping pod.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from datajax_operator import runner
from datajax_operator.cli import build_parser
from tests.chart.chartlib import CHART, CI_VALUES, REPO, Renderer, by_kind, one

pytestmark = pytest.mark.chart


def parse(container: dict[str, Any]) -> argparse.Namespace:
    (command,) = container["command"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[command] == "datajax_operator.cli:main", f"{command} is not the operator's entry point"
    try:
        return build_parser().parse_args(container["args"])
    except SystemExit as exit_:  # argparse reports on stderr and exits 2
        raise AssertionError(f"datajax-operator refuses the chart's args {container['args']}") from exit_


def effective_values(values_file: Path) -> dict[str, Any]:
    """values.yaml overlaid with one scenario file (the keys these tests read are not nested deeper)."""
    merged: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    for key, value in (yaml.safe_load(values_file.read_text()) or {}).items():
        merged[key] = {**merged[key], **value} if isinstance(value, dict) else value
    return merged


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
def test_chart_args_parse_as_meant(renderer: Renderer, values_file: Path) -> None:
    docs = renderer.render([values_file])
    values = effective_values(values_file)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = parse(container)

    assert args.func is runner._cmd_run
    if values["watch"]["allNamespaces"]:
        assert args.all_namespaces and args.namespace == []
    else:
        assert not args.all_namespaces
        assert args.namespace == values["watch"]["namespaces"]  # --namespace repeated, in order

    # --config points into the mounted ConfigMap, at the key the chart writes.
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    (item,) = volume["configMap"]["items"]
    assert args.config == f"{mount['mountPath']}/{item['path']}"
    configmap = next(
        d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"] == volume["configMap"]["name"]
    )
    assert item["key"] in configmap["data"]

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert (
        args.liveness_port
        == ports[container["livenessProbe"]["httpGet"]["port"]]
        == values["ports"]["health"]
    )
    assert args.metrics_port == ports["metrics"] == values["ports"]["metrics"]
    service = one(docs, "Service")
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)

    assert args.log_format == values["logFormat"]
    assert args.kubeconfig is None  # in a pod: the ServiceAccount's mounted token
    if values["leaderElection"]["enabled"]:
        assert args.peering == values["leaderElection"]["peeringName"]
        peerings = by_kind(docs, "ClusterKopfPeering") + by_kind(docs, "KopfPeering")
        assert peerings and {p["metadata"]["name"] for p in peerings} == {args.peering}
    else:
        assert args.peering is None


def test_custom_ports_and_text_logs_reach_the_operator(renderer: Renderer) -> None:
    docs = renderer.render(sets=["ports.health=8181", "ports.metrics=9191", "logFormat=text"])
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    args = parse(container)
    assert (args.liveness_port, args.metrics_port, args.log_format) == (8181, 9191, "text")
    assert {p["port"] for p in one(docs, "Service")["spec"]["ports"]} == {8181, 9191}


def test_parser_refuses_both_scopes() -> None:
    """Why the chart renders exactly one of the two: the operator treats them as exclusive."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--all-namespaces", "--namespace=a"])
