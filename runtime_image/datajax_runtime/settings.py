"""The sidecar's cost settings: command-line flags, overridden by a JSON file re-read every interval.

Why a file: in the serving pod the operator renders these settings into a ConfigMap (`<model>-sidecar`,
key `settings.json`) mounted into the sidecar. A change of the ceiling, price, window or SLO then
reaches the running sidecar when the kubelet refreshes the mounted file, instead of changing the pod
template and restarting vLLM (a full XLA recompile on TPU). The flags still work on their own, for
a sidecar run by hand.

File keys (camelCase, as in the DataJaxModel spec), every one optional; a key present in the file wins
over the flag, and `"sloP95Seconds": null` clears an SLO given by flag:

    {"chips": 8, "usdPerChipHour": 2.7, "ceilingUSDPerMillionTokens": 3, "basis": "total",
     "window": "10m", "minTokensPerSecond": 1, "sloP95Seconds": 2.5}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import durationpy

from datajax_runtime.window import Pricing

__all__ = [
    "FILE_KEYS",
    "Settings",
    "SettingsError",
    "parse_duration",
    "parse_settings",
    "read_settings",
    "resolve",
]


FILE_KEYS = (
    "chips",
    "usdPerChipHour",
    "ceilingUSDPerMillionTokens",
    "basis",
    "window",
    "minTokensPerSecond",
    "sloP95Seconds",
)


_DEFAULTS: dict[str, Any] = {"basis": "total", "window": 600.0, "minTokensPerSecond": 1.0}


class SettingsError(ValueError):
    """Settings that cannot be used; the message names the key and the source."""


def parse_duration(text: str) -> float:
    """`10m`, `5s`, `1h30m`, `250ms` (Go durations, parsed by durationpy as the operator does) or plain
    seconds -> seconds (positive)."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = durationpy.from_str(text.strip()).total_seconds()
        except durationpy.DurationError:
            raise ValueError(f"not a duration: {text!r} (use e.g. 5s, 10m, 1h, 250ms)") from None
    if not seconds > 0 or math.isinf(seconds):
        raise ValueError(f"duration must be positive: {text!r}")
    return seconds


@dataclass(frozen=True)
class Settings:
    """What the sidecar computes with: the pricing, the window and the latency objective."""

    pricing: Pricing
    window_seconds: float
    slo_p95_seconds: float | None


def read_settings(path: str | Path) -> dict[str, Any]:
    """The JSON object in the settings file (unknown keys refused: a typo must not go unnoticed)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError) as err:
        raise SettingsError(f"{path}: {err}") from err
    return parse_settings(text, path)


def parse_settings(text: str, path: str | Path) -> dict[str, Any]:
    """`read_settings` on text already read from ``path`` (named in the errors)."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise SettingsError(f"{path}: {err}") from err
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: settings must be a JSON object")
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise SettingsError(f"{path}: unknown keys {', '.join(unknown)} (known: {', '.join(FILE_KEYS)})")
    return data


def _number(value: Any, key: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise SettingsError(f"{key} must be a number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise SettingsError(f"{key} must be {'positive' if positive else 'non-negative'}, got {value!r}")
    return float(value)


def resolve(flags: Mapping[str, Any], file: Mapping[str, Any] | None = None) -> Settings:
    """Flag values (keys of FILE_KEYS, None when not given) overridden by the file's keys."""
    # A flag not given is None; a key absent from both sources takes the flag's documented default.
    merged = {**_DEFAULTS, **{k: v for k, v in flags.items() if v is not None}, **(file or {})}
    missing = [k for k in ("chips", "usdPerChipHour", "ceilingUSDPerMillionTokens") if merged.get(k) is None]
    if missing:
        raise SettingsError(f"{', '.join(missing)} not set: pass the flag, or set it in the settings file")
    chips = merged["chips"]
    if isinstance(chips, bool) or not isinstance(chips, int) or chips <= 0:
        raise SettingsError(f"chips must be a positive integer, got {chips!r}")
    basis = merged["basis"]
    if basis not in ("total", "output"):
        raise SettingsError(f"basis must be total or output, got {basis!r}")
    window = merged["window"]
    try:
        window_seconds = parse_duration(window) if isinstance(window, str) else float(window)
    except (TypeError, ValueError) as err:
        raise SettingsError(f"window: {err}") from None
    if not window_seconds > 0:
        raise SettingsError(f"window must be positive, got {window!r}")
    slo = merged.get("sloP95Seconds")
    return Settings(
        pricing=Pricing(
            chips=chips,
            usd_per_chip_hour=_number(merged["usdPerChipHour"], "usdPerChipHour", positive=False),
            ceiling_usd_per_million_tokens=_number(
                merged["ceilingUSDPerMillionTokens"], "ceilingUSDPerMillionTokens", positive=True
            ),
            basis=basis,
            min_tokens_per_second=_number(merged["minTokensPerSecond"], "minTokensPerSecond", positive=False),
        ),
        window_seconds=window_seconds,
        slo_p95_seconds=None if slo is None else _number(slo, "sloP95Seconds", positive=True),
    )
