"""The real vLLM TPU stack (`make tpu-env`), run in subprocesses with its own Python 3.12.

The repository's .venv has neither vLLM nor libtpu: each test hands a batch of work to a probe script
(tests/tpu_stack/probes/) run by the tpu-env's interpreter, which writes its findings as JSON.
Without the tpu-env these tests fail, saying how to build it; they are never skipped.
"""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from datajax_operator.compile_gate import TPU_PYTHON_ENV, default_tpu_python
from datajax_operator.plan.gate_request import COMPILE_ONLY_ENV

REPO = Path(__file__).resolve().parents[2]
PROBES = Path(__file__).parent / "probes"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.tpu_stack)


@pytest.fixture(scope="session")
def tpu_python() -> str:
    path = os.environ.get(TPU_PYTHON_ENV) or str(default_tpu_python())
    if not Path(path).is_file():
        pytest.fail(f"no tpu-env interpreter at {path}: run `make tpu-env` (tools/tpu-env.sh) first")
    return path


def probe_env(*paths: Path) -> dict[str, str]:
    """A clean environment for the tpu-env: only the given directories on its path, JAX on the CPU."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    env |= COMPILE_ONLY_ENV
    env["VLLM_LOGGING_LEVEL"] = "WARNING"
    return env


def run_probe(
    python: str,
    probe: str,
    payload: Any,
    tmp_path: Path,
    *paths: Path,
    extra_env: dict[str, str] | None = None,
    timeout: float = 900,
) -> Any:
    """Run probes/<probe> with `payload` (JSON file in, JSON file out) and return what it wrote."""
    request, result = tmp_path / f"{probe}.in.json", tmp_path / f"{probe}.out.json"
    request.write_text(json.dumps(payload), encoding="utf-8")
    done = subprocess.run(
        [python, str(PROBES / probe), str(request), str(result)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=probe_env(*paths) | (extra_env or {}),
        check=False,
    )
    assert done.returncode == 0, f"{probe} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return json.loads(result.read_text(encoding="utf-8"))
