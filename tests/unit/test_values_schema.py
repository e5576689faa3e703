"""The chart's values schema for `config` is OperatorConfig's: generated, never drifted, and helm's
schema check refuses exactly what the operator refuses."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from datajax_operator.plan.config import OperatorConfig

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "datajax-operator"


def test_the_config_schema_is_generated_from_operator_config() -> None:
    """What `make crd` would write is what the chart has (tools/values_schema.py, run in-process)."""
    spec = importlib.util.spec_from_file_location("values_schema", REPO / "tools" / "values_schema.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    current = (CHART / "values.schema.json").read_text(encoding="utf-8")
    assert generator.expected(current) == current, "values.schema.json drifted from OperatorConfig: make crd"


def test_the_charts_default_config_is_the_operators_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert OperatorConfig.model_validate(values["config"]) == OperatorConfig()


@pytest.mark.parametrize(
    "override",
    [
        {"vllmImage": "vllm/vllm-tpu:latest"},
        {"prices": {"v9x": {"on-demand": 1.0}}},
        {"prices": {"v6e": {"reserved": 1.0}}},
        {"prices": {"v6e": {"on-demand": 0}}},
        {"sidecarPort": 80},
        {"sidecarInterval": "ten seconds"},
        {"sidecarWindow": "10m"},
    ],
)
def test_helm_and_the_operator_refuse_the_same_config(override: dict[str, Any]) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))["properties"]["config"]
    config = {**OperatorConfig().model_dump(by_alias=True), **override}
    jsonschema.Draft7Validator(schema).validate(OperatorConfig().model_dump(by_alias=True))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(config)
    with pytest.raises(ValidationError):
        OperatorConfig.model_validate(config)
