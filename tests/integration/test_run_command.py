"""`datajax-operator run` as a person or the chart runs it: a process, JSON logs, probes, clean stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubehelpers import GROUP, PLURAL, VERSION, Operators, wait_for
from kubernetes import client

from datajax_devtools.localcluster import free_port

pytestmark = pytest.mark.integration


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except OSError:
        return 0


def test_run_process_serves_probes_logs_json_and_stops_on_sigterm(
    kubeconfig: Path, admin_client: Any, namespace: str, operators: Operators
) -> None:
    operators.stop()  # this process is the only operator for the duration of the test
    liveness, metrics = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "datajax_operator.cli",
        "run",
        "--namespace",
        namespace,
        "--kubeconfig",
        str(kubeconfig),
        "--log-format",
        "json",
        "--bind-address",
        "127.0.0.1",
        "--liveness-port",
        str(liveness),
        "--metrics-port",
        str(metrics),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: _get(liveness, "/healthz") == 200, timeout=60, what="/healthz")
        assert _get(metrics, "/metrics") == 200
        doc = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "DataJaxModel",
            "metadata": {"name": "by-process", "namespace": namespace},
            "spec": {"model": {"name": "org/m"}, "tpu": {"generation": "v5e", "topology": "1x1"}},
        }
        custom = client.CustomObjectsApi(admin_client)
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
        wait_for(
            lambda: (
                custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "by-process").get(
                    "status"
                )
                or {}
            ).get("phase"),
            what="status written by the process",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output[-2000:]
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "the operator logged nothing"
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    assert any("by-process" in json.dumps(r) for r in records)
