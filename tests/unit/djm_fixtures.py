"""Helpers shared by the foundation unit tests: the examples, a spec builder, golden files.

A plain module rather than conftest.py, so other test suites in tests/unit keep their own conftest.
"""

import copy
from pathlib import Path
from typing import Any

import yaml
from tests import golden

from datajax_operator.api import DataJaxModel

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = Path(__file__).parent / "golden"

BASE_DOC: dict[str, Any] = {
    "apiVersion": "datajax.dev/v1alpha1",
    "kind": "DataJaxModel",
    "metadata": {"name": "m", "namespace": "ns"},
    "spec": {
        "model": {"name": "org/model"},
        "tpu": {"generation": "v6e", "topology": "2x4"},
    },
}


def doc_with(**spec_changes: Any) -> dict[str, Any]:
    """A valid DataJaxModel document with spec sections replaced (e.g. tpu={...})."""
    doc = copy.deepcopy(BASE_DOC)
    doc["spec"].update(spec_changes)
    return doc


def model_with(**spec_changes: Any) -> DataJaxModel:
    return DataJaxModel.model_validate(doc_with(**spec_changes))


def load_example(path: Path) -> DataJaxModel:
    return DataJaxModel.model_validate(yaml.safe_load(path.read_text()))


def check_golden(name: str, text: str) -> None:
    """Compare text with tests/unit/golden/<name> (see tests/golden.py for the update mode)."""
    golden.check_golden(GOLDEN / name, text)
