"""The sidecar's settings file: flags overridden by the file, validation, and a reload without restart."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from datajax_runtime.settings import SettingsError, read_settings, resolve
from datajax_runtime.sidecar import Sidecar, SidecarConfig
from datajax_runtime.window import Pricing

FLAGS = {
    "chips": 8,
    "usdPerChipHour": 2.7,
    "ceilingUSDPerMillionTokens": 3.0,
    "basis": "total",
    "window": 600.0,
    "minTokensPerSecond": 1.0,
    "sloP95Seconds": None,
}


def test_file_keys_override_flags() -> None:
    settings = resolve(
        FLAGS,
        {"ceilingUSDPerMillionTokens": 5, "window": "6s", "minTokensPerSecond": 50, "sloP95Seconds": 2},
    )
    assert settings.pricing == Pricing(
        chips=8, usd_per_chip_hour=2.7, ceiling_usd_per_million_tokens=5.0, min_tokens_per_second=50.0
    )
    assert settings.window_seconds == 6.0
    assert settings.slo_p95_seconds == 2.0
    # a null SLO in the file clears the flag's
    assert resolve({**FLAGS, "sloP95Seconds": 1.0}, {"sloP95Seconds": None}).slo_p95_seconds is None


def test_the_file_alone_is_enough() -> None:
    only = {"chips": 4, "usdPerChipHour": 1.2, "ceilingUSDPerMillionTokens": 3, "basis": "output"}
    settings = resolve({k: None for k in FLAGS}, only)
    assert settings.pricing.usd_per_hour == pytest.approx(4.8)
    assert settings.pricing.basis == "output"
    assert settings.window_seconds == 600.0 and settings.pricing.min_tokens_per_second == 1.0


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ({"chips": 0}, "chips must be a positive integer"),
        ({"chips": 2.5}, "chips must be a positive integer"),
        ({"basis": "input"}, "basis must be total or output"),
        ({"window": "ten minutes"}, "window: not a duration"),
        ({"usdPerChipHour": "2.7"}, "usdPerChipHour must be a number"),
        ({"ceilingUSDPerMillionTokens": 0}, "ceilingUSDPerMillionTokens must be positive"),
        ({"minTokensPerSecond": -1}, "minTokensPerSecond must be non-negative"),
    ],
)
def test_bad_values_are_named(file: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        resolve(FLAGS, file)


def test_missing_values_and_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="chips, usdPerChipHour not set"):
        resolve({**FLAGS, "chips": None, "usdPerChipHour": None})
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"ceiling": 3}))
    with pytest.raises(SettingsError, match="unknown keys ceiling"):
        read_settings(path)
    path.write_text("[1]")
    with pytest.raises(SettingsError, match="must be a JSON object"):
        read_settings(path)


def test_serve_refuses_to_start_without_a_price(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "datajax_runtime.cli", "serve", "--upstream", "http://127.0.0.1:1/metrics",
         "--settings", str(tmp_path / "absent.json")],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "absent.json" in done.stderr


def test_sidecar_applies_a_changed_file_on_its_next_scrape(tmp_path: Path) -> None:
    asyncio.run(_reload(tmp_path))


async def _reload(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"ceilingUSDPerMillionTokens": 3, "window": "10m"}))
    initial = resolve(FLAGS, read_settings(path))
    config = SidecarConfig(
        upstream="http://127.0.0.1:1/metrics",  # refused at once: the scrape fails, the step goes on
        pricing=initial.pricing,
        window_seconds=initial.window_seconds,
        settings_path=str(path),
        flag_settings=FLAGS,
    )
    now = [0.0]
    sidecar = Sidecar(config, clock=lambda: now[0])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        await sidecar.scrape_once(session)
        assert "datajax_cost_ceiling_usd_per_million_tokens 3.0" in sidecar.exposition
        assert "datajax_latency_slo_seconds" not in sidecar.exposition
        # what the model-level alert needs to judge as the operator does
        assert "datajax_cost_window_seconds 600.0" in sidecar.exposition
        assert "datajax_cost_min_tokens_per_second 1.0" in sidecar.exposition

        path.write_text(json.dumps({"ceilingUSDPerMillionTokens": 4.5, "window": "6s", "sloP95Seconds": 1}))
        now[0] = 1.0
        await sidecar.scrape_once(session)
        assert "datajax_cost_ceiling_usd_per_million_tokens 4.5" in sidecar.exposition
        assert "datajax_latency_slo_seconds 1.0" in sidecar.exposition
        assert "datajax_cost_window_seconds 6.0" in sidecar.exposition
        assert sidecar.pricing.ceiling_usd_per_million_tokens == 4.5
        breakeven = 21.6e6 / (3600 * 4.5)
        assert f"datajax_breakeven_tokens_per_second {breakeven!r}" in sidecar.exposition

        # a bad file keeps what is in force
        path.write_text(json.dumps({"basis": "input"}))
        now[0] = 2.0
        await sidecar.scrape_once(session)
        assert sidecar.pricing.ceiling_usd_per_million_tokens == 4.5
        assert not math.isnan(sidecar.pricing.usd_per_hour)
