"""Cost math of DESIGN §5/§6 and the price table with its overrides."""

from pathlib import Path

import pytest
from djm_fixtures import model_with

from datajax_operator.plan import OperatorConfig, PlanError, load_config, make_plan
from datajax_operator.plan.cost import breakeven_tokens_per_second

CONFIG = OperatorConfig()


def test_usd_per_hour_is_chips_times_replicas_times_price() -> None:
    plan = make_plan(model_with(replicas=3), CONFIG)
    assert plan.cost.usd_per_chip_hour == 2.70
    assert plan.cost.usd_per_hour == pytest.approx(8 * 3 * 2.70)


def test_breakeven_is_whole_model_rate_at_ceiling() -> None:
    plan = make_plan(model_with(replicas=2, cost={"ceilingUSDPerMillionTokens": 2.0}), CONFIG)
    usd_per_hour = 8 * 2 * 2.70
    assert plan.cost.breakeven_tokens_per_second == pytest.approx(usd_per_hour * 1e6 / (3600 * 2.0))
    # At exactly the break-even rate the model costs the ceiling.
    tokens_per_hour = plan.cost.breakeven_tokens_per_second * 3600
    assert usd_per_hour / tokens_per_hour * 1e6 == pytest.approx(2.0)


def test_breakeven_formula() -> None:
    assert breakeven_tokens_per_second(21.6, 3.0) == pytest.approx(2000.0)


def test_zero_replicas_cost_nothing() -> None:
    plan = make_plan(model_with(replicas=0), CONFIG)
    assert plan.cost.usd_per_hour == 0
    assert plan.cost.breakeven_tokens_per_second == 0


@pytest.mark.parametrize(
    ("gen", "topology", "tpu_extra", "cost", "price"),
    [
        ("v5e", "2x2", {}, {}, 1.20),
        ("v5e", "2x2", {"spot": True}, {}, 0.245),
        ("v6e", "2x4", {"spot": True}, {}, 0.544),
        ("v6e", "2x4", {}, {"pricing": "cud-1y"}, 1.89),
        ("v6e", "2x4", {}, {"pricing": "cud-3y"}, 1.22),
        ("v5p", "2x2x1", {}, {}, 4.20),
        ("v5p", "2x2x1", {"spot": True}, {}, 0.836),
        ("v6e", "2x4", {}, {"usdPerChipHour": 1.5}, 1.5),
    ],
)
def test_price_table_of_design(
    gen: str, topology: str, tpu_extra: dict[str, object], cost: dict[str, object], price: float
) -> None:
    plan = make_plan(
        model_with(tpu={"generation": gen, "topology": topology, **tpu_extra}, cost=cost), CONFIG
    )
    assert plan.cost.usd_per_chip_hour == price


@pytest.mark.parametrize(
    ("gen", "topology", "cost"),
    [("tpu7x", "2x2x1", {}), ("v5e", "2x2", {"pricing": "cud-1y"}), ("v5p", "2x2x1", {"pricing": "cud-3y"})],
)
def test_unknown_price_is_a_problem_not_a_guess(gen: str, topology: str, cost: dict[str, object]) -> None:
    with pytest.raises(PlanError) as err:
        make_plan(model_with(tpu={"generation": gen, "topology": topology}, cost=cost), CONFIG)
    [problem] = err.value.problems
    assert problem.field == "spec.cost.usdPerChipHour"
    assert f"prices.{gen}." in problem.message


def test_explicit_price_serves_an_unpriced_generation() -> None:
    plan = make_plan(
        model_with(tpu={"generation": "tpu7x", "topology": "2x2x1"}, cost={"usdPerChipHour": 5}), CONFIG
    )
    assert plan.cost.usd_per_hour == pytest.approx(4 * 5)


def test_config_file_replaces_the_whole_price_table(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("runtimeImage: example/runtime:1\nprices:\n  v6e: {on-demand: 2.0}\n")
    config = load_config(path)
    assert config.runtime_image == "example/runtime:1"
    assert config.prices == {"v6e": {"on-demand": 2.0}}
    assert make_plan(model_with(), config).cost.usd_per_chip_hour == 2.0
    with pytest.raises(PlanError):
        make_plan(model_with(tpu={"generation": "v5e", "topology": "2x2"}), config)


def test_json_config_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"sidecarInterval": "10s"}')
    config = load_config(path)
    assert config.sidecar_interval == "10s"
    assert config.prices["v6e"]["on-demand"] == 2.70
    assert load_config(None) == OperatorConfig()
