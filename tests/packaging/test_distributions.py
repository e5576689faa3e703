"""One distribution per image: the wheels are built and what each one ships is checked.

The operator's wheel goes into the operator image (and the chart runs it), the runtime's into the vLLM
TPU image (sidecar + vLLM plugin), the development tools' nowhere but development machines and CI. A
file in two wheels, a plugin entry point in the operator's, or an operator module that needs the
development tools would each put the wrong code (or a crash) into an image.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from configparser import ConfigParser
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]
SOURCES = {"operator": REPO, "runtime": REPO / "runtime_image", "devtools": REPO / "devtools"}
PACKAGES = {"operator": "datajax_operator", "runtime": "datajax_runtime", "devtools": "datajax_devtools"}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, zipfile.ZipFile]:
    out: dict[str, zipfile.ZipFile] = {}
    for name, source in SOURCES.items():
        dest = tmp_path_factory.mktemp(name)
        # Offline: the build backend installed with the dev dependencies, no download.
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
             "--wheel-dir", str(dest), str(source)],
            check=True,
        )  # fmt: skip
        (wheel,) = dest.glob("*.whl")
        out[name] = zipfile.ZipFile(wheel)
    return out


def _files(wheel: zipfile.ZipFile) -> set[str]:
    return {n for n in wheel.namelist() if ".dist-info/" not in n}


def _entry_points(wheel: zipfile.ZipFile) -> dict[str, dict[str, str]]:
    names = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    if not names:
        return {}
    parser = ConfigParser()
    parser.read_string(wheel.read(names[0]).decode())
    return {section: dict(parser[section]) for section in parser.sections()}


@pytest.mark.parametrize("name", list(SOURCES))
def test_each_wheel_ships_only_its_own_package(wheels: dict[str, zipfile.ZipFile], name: str) -> None:
    tops = {f.split("/", 1)[0] for f in _files(wheels[name])}
    assert tops == {PACKAGES[name]}


def test_no_file_is_in_two_wheels(wheels: dict[str, zipfile.ZipFile]) -> None:
    seen: dict[str, str] = {}
    for name, wheel in wheels.items():
        for f in _files(wheel):
            assert f not in seen, f"{f} is in the {seen[f]} and the {name} wheel"
            seen[f] = name


def test_entry_points_belong_to_their_image(wheels: dict[str, zipfile.ZipFile]) -> None:
    operator = _entry_points(wheels["operator"])
    runtime = _entry_points(wheels["runtime"])
    assert operator == {"console_scripts": {"datajax-operator": "datajax_operator.cli:main"}}
    # vLLM loads every installed general plugin in every process: only the runtime's wheel has ours.
    assert runtime["vllm.general_plugins"] == {"datajax": "datajax_runtime.plugin:register"}
    assert runtime["console_scripts"] == {"datajax-sidecar": "datajax_runtime.cli:main"}
    assert _entry_points(wheels["devtools"]) == {}


def test_the_development_tools_ship_their_data(wheels: dict[str, zipfile.ZipFile]) -> None:
    assert any(f.endswith(".prom") for f in _files(wheels["devtools"]))
    assert not any(f.endswith(".prom") for f in _files(wheels["operator"]))


def test_the_runtime_ships_its_schema(wheels: dict[str, zipfile.ZipFile]) -> None:
    assert "datajax_runtime/bundle.schema.json" in _files(wheels["runtime"])


# Every operator module imports in a Python that cannot import the development tools, the runtime
# (the operator image has neither) or cryptography (a development dependency). validate_mesh is the
# one exception: the command checks that the runtime is installed before importing it.
_IMPORT_ALL = r"""
import importlib, importlib.abc, pkgutil, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"datajax_devtools", "datajax_runtime", "cryptography"}:
            raise ImportError(f"{name} is not in the operator image")
        return None

sys.meta_path.insert(0, Refuse())
import datajax_operator
names = [m.name for m in pkgutil.walk_packages(datajax_operator.__path__, "datajax_operator.")]
for name in names:
    if name != "datajax_operator.validate_mesh":
        importlib.import_module(name)
print(len(names))
"""


def test_every_operator_module_imports_without_the_other_distributions() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 20


def test_validate_mesh_without_the_runtime_says_what_to_install(tmp_path: Path) -> None:
    script = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'datajax_runtime' else real(n, *a)\n"
        "from datajax_operator.cli import main\n"
        f"sys.exit(main(['validate-mesh', '-f', {str(REPO / 'examples/llama3-8b-v6e.yaml')!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "validate-mesh needs datajax-runtime" in done.stderr
    assert "runtime_image" in done.stderr


def test_operator_and_runtime_ship_the_same_tpu_catalog(wheels: dict[str, zipfile.ZipFile]) -> None:
    """One catalog record per TPU generation, read by both images: the runtime's copy is written by
    `make crd` (tools/sync_tpu_catalog.py) and must be byte-identical in the built wheels too."""
    operator = wheels["operator"].read("datajax_operator/api/tpu_catalog.json")
    runtime = wheels["runtime"].read("datajax_runtime/tpu_catalog.json")
    assert operator == runtime
