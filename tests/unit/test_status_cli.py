"""`datajax-operator status` without a cluster: misuse and unreachable clusters exit 2, said plainly.

The answers from a real API server are in tests/integration/test_status_command.py.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from datajax_operator.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exited:  # argparse's usage errors
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "give the NAME of a DataJaxModel, or --all"),
        (("m", "--all"), "give a NAME or --all, not both"),
        (("m", "-A"), "give a NAME or --all, not both"),
        (("--all", "-n", "a", "-A"), "not allowed with argument"),
        (("m", "--watch", "0"), "--watch takes a number of seconds greater than 0"),
        (("m", "-o", "yaml"), "invalid choice"),
    ],
)
def test_misuse_exits_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    code, out, err = _run(capsys, "status", *argv)
    assert (code, out) == (2, "")
    assert message in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_cluster_exits_2_with_the_server_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    port = _closed_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "serving"}}],
                "current-context": "x",
            }
        )
    )
    for argv in (("llama3-8b",), ("--all",), ("-A", "-o", "json")):
        code, out, err = _run(capsys, "status", *argv, "--kubeconfig", str(kubeconfig))
        assert (code, out) == (2, ""), argv
        assert err.startswith("error: cannot reach the API server") and str(port) in err, err
        assert "Traceback" not in err


def test_unusable_kubeconfig_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _run(capsys, "status", "m", "--kubeconfig", str(tmp_path / "missing"))
    assert (code, out) == (2, "")
    assert err == f"error: kubeconfig {tmp_path / 'missing'} does not exist\n"
    empty = tmp_path / "empty"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    code, out, err = _run(capsys, "status", "m", "-n", "x", "--kubeconfig", str(empty))
    assert (code, out) == (2, "")
    assert err.startswith("error: no usable kubeconfig")
