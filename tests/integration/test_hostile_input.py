"""Hostile strings: long names, unicode, YAML alias bombs, shell injection in extraArgs and env.

The serving pods pass user strings as argv elements; the multi-host leader does go through a shell
script (Ray head first, then vLLM), so its rendered command is executed here, with stand-ins for
`ray`, `python3` and `vllm` on PATH, to prove every user string arrives as one argument and none of
them runs anything.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_state import ClusterState, model_doc
from kubehelpers import RunningOperator, wait_for

from datajax_devtools.localcluster import LocalCluster, find_binary

pytestmark = pytest.mark.integration

OPERATOR_CLI = Path(sys.executable).with_name("datajax-operator")


def _bomb(levels: int = 9) -> str:
    """A valid-looking DataJaxModel whose env valueFrom is a billion laughs (the YAML decoders must refuse
    it before any schema is consulted)."""
    lines = ["apiVersion: datajax.dev/v1alpha1", "kind: DataJaxModel", "metadata: {name: bomb}", "x:"]
    lines.append("  l0: &l0 {" + ", ".join(f"k{i}: lol" for i in range(9)) + "}")
    for n in range(1, levels):
        lines.append(f"  l{n}: &l{n} {{" + ", ".join(f"k{i}: *l{n - 1}" for i in range(9)) + "}")
    lines += [
        "spec:",
        "  model: {name: org/m}",
        "  tpu: {generation: v6e, topology: 2x4}",
        "  serving:",
        "    env:",
        "    - name: A",
        f"      valueFrom: *l{levels - 1}",
    ]
    return "\n".join(lines) + "\n"


def _limit_memory() -> None:
    limit = 1 << 31  # 2 GiB: a bomb that expanded would die here instead of taking the machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_yaml_alias_bomb_is_refused_fast(
    tmp_path: Path, state: ClusterState, namespace: str, local_cluster: LocalCluster
) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb())
    assert len(bomb.read_bytes()) < 2000

    t0 = time.monotonic()
    plan = subprocess.run(
        [str(OPERATOR_CLI), "plan", "-f", str(bomb)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
        check=False,
    )
    assert plan.returncode == 1, plan.stderr[-2000:]
    assert "expands to more than" in plan.stderr
    assert time.monotonic() - t0 < 20

    # The API server, given the same YAML, refuses it too (its decoder bounds aliases).
    t0 = time.monotonic()
    status, body = state.call(
        "POST",
        f"/apis/datajax.dev/v1alpha1/namespaces/{namespace}/datajaxmodels",
        bomb.read_text(),
        content_type="application/yaml",
    )
    assert 400 <= status < 500, (status, str(body)[:500])
    assert time.monotonic() - t0 < 20
    kubectl = subprocess.run(
        [
            str(find_binary("kubectl")),
            *("--kubeconfig", str(local_cluster.kubeconfig), "-n", namespace),
            *("create", "--dry-run=server", "-f", str(bomb)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert kubectl.returncode != 0
    assert state.model(namespace, "bomb") is None


HOSTILE_ARGS = [
    "--foo; rm -rf /",
    "$(touch {mark})",
    "`touch {mark}`",
    '"; touch {mark}; echo "',
    "'; touch {mark}; '",
    "--x=1\ntouch {mark}",
    "${{IFS}}touch${{IFS}}{mark}",
    "&& touch {mark}",
    "| touch {mark}",
    "模型 🙂 \u202e",
    "--ok=a b\tc",
    "-",
    "*",
]


def _stubs(directory: Path, argv_file: Path) -> dict[str, str]:
    """`ray` and `python3` that succeed, and a `vllm` that records its argv NUL-separated."""
    directory.mkdir()
    for name, body in (
        ("ray", "exit 0"),
        ("python3", "exit 0"),
        ("vllm", f"printf '%s\\0' \"$@\" > '{argv_file}'"),
        ("sleep", "exit 0"),
    ):
        path = directory / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return {"PATH": f"{directory}:/usr/bin:/bin", "LWS_GROUP_SIZE": "4", "HOME": str(directory)}


def _run_container(container: dict[str, Any], tmp_path: Path, tag: str) -> list[str]:
    """Run the container's command + args as the kubelet would (no shell added), stubs on PATH."""
    argv_file = tmp_path / f"{tag}.argv"
    env = _stubs(tmp_path / f"{tag}-bin", argv_file)
    argv = [*container["command"], *container.get("args", [])]
    if argv[0] == "/bin/bash":
        argv[0] = "bash"  # the stubs' PATH still finds the real bash
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return argv_file.read_bytes().decode().split("\0")[:-1]


@pytest.mark.parametrize(("topology", "kind"), [("2x4", "Deployment"), ("4x4", "LeaderWorkerSet")])
def test_injection_attempts_stay_single_arguments(
    topology: str,
    kind: str,
    *,
    tmp_path: Path,
    state: ClusterState,
    namespace: str,
    operator: RunningOperator,
) -> None:
    mark = tmp_path / "pwned"
    # Each hostile string as the value of a real vLLM flag: `plan` refuses flags vLLM does not have.
    args = [f"--chat-template={a.format(mark=mark)}" for a in HOSTILE_ARGS]
    env = [{"name": f"V{i}", "value": a.format(mark=mark)} for i, a in enumerate(HOSTILE_ARGS)]
    name = "h" + "-x" * 100  # 201 characters: children get a hashed 45-character name
    doc = model_doc(name, namespace, topology, serving={"extraArgs": args, "env": env})
    doc["spec"]["model"]["servedName"] = "模型; $(touch " + str(mark) + ")"
    state.create_model(namespace, doc)
    valid = wait_for(lambda: state.condition(namespace, name, "SpecValid"), 60, "SpecValid")
    assert valid["status"] == "True", valid
    model = state.model(namespace, name) or {}
    child_name = model["status"]["endpoint"].split("//")[1].split(".")[0]
    assert len(child_name) <= 45
    workload = wait_for(lambda: state.child(namespace, kind, child_name), 60, kind)
    template = (
        workload["spec"]["template"]
        if kind == "Deployment"
        else workload["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    )
    vllm = next(c for c in template["spec"]["containers"] if c["name"] == "vllm")
    assert vllm["args"][-len(args) :] == args, "extraArgs not passed verbatim, in order"
    assert [e for e in vllm["env"] if re.fullmatch(r"V[0-9]+", e["name"])] == env

    received = _run_container(vllm, tmp_path, kind)
    assert received == ["serve", *vllm["args"]], "an argument was split, joined or expanded"
    assert not mark.exists(), "a user string was executed"
    if kind == "Deployment":
        assert vllm["command"] == ["vllm", "serve"], "a single-host pod needs no shell"
    else:
        worker = workload["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
        assert not any(str(mark) in part for part in [*worker["command"], *worker.get("args", [])])
