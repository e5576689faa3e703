"""`datajax-sidecar`: `serve` (the sidecar in the serving pod), `analyze` (the same math, offline) and
`record` (a timeline of it, for `datajax-operator replay`).

`analyze` exists so a user can check by hand what the sidecar computes: it runs the very functions
`serve` runs (parse -> snapshot -> ring -> figures) on two saved scrapes `--seconds` apart; `record`
runs them on live scrapes of one vLLM per slice, one JSON line per interval.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from datajax_runtime import settings
from datajax_runtime.exposition import ExpositionError, parse
from datajax_runtime.record import Recorder, fetch, record
from datajax_runtime.ring import ScrapeRing
from datajax_runtime.sidecar import SidecarConfig, serve
from datajax_runtime.window import Figures, Pricing, figures, snapshot

__all__ = ["analyze", "main", "parse_duration"]


def parse_duration(text: str) -> float:
    """`10m`, `5s`, `1h`, `250ms` or plain seconds -> seconds (positive)."""
    try:
        return settings.parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return check


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _add_pricing(parser: argparse.ArgumentParser, *, offline: bool) -> None:
    """`analyze` needs chips and price on the command line; `serve` may take them (and the ceiling)
    from its --settings file instead, so there they are checked after the file is read."""
    parser.add_argument("--chips", type=_positive(int), required=offline, help="chips in the slice")
    parser.add_argument(
        "--usd-per-chip-hour", type=_non_negative, required=offline, help="price of one chip-hour"
    )
    parser.add_argument(
        "--ceiling",
        type=_positive(float),
        default=3.0 if offline else None,
        help="cost ceiling in USD per million tokens (default 3.0 for analyze; serve needs it here or "
        "in --settings)",
    )
    parser.add_argument(
        "--basis",
        choices=("total", "output"),
        default="total",
        help="tokens counted for $/Mtok: prompt + generated (total) or generated only",
    )
    parser.add_argument(
        "--min-tokens-per-second",
        type=_non_negative,
        default=1.0,
        help="below this token rate $/Mtok is not judged (NaN); default 1",
    )


def _pricing(args: argparse.Namespace) -> Pricing:
    return Pricing(
        chips=args.chips,
        usd_per_chip_hour=args.usd_per_chip_hour,
        ceiling_usd_per_million_tokens=args.ceiling,
        basis=args.basis,
        min_tokens_per_second=args.min_tokens_per_second,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="datajax-sidecar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("serve", help="scrape vLLM and export datajax_* metrics")
    run.add_argument("--upstream", required=True, help="vLLM metrics URL, e.g. http://127.0.0.1:8000/metrics")
    run.add_argument("--port", type=int, default=9400)
    run.add_argument("--host", default="0.0.0.0")
    _add_pricing(run, offline=False)
    run.add_argument("--window", type=parse_duration, default=600.0, help="evaluation window (default 10m)")
    run.add_argument("--interval", type=parse_duration, default=5.0, help="scrape interval (default 5s)")
    run.add_argument("--slo-p95", type=_positive(float), default=None, help="p95 latency objective, seconds")
    run.add_argument("--plan-status", default=None, help="JSON written by the vLLM plugin")
    run.add_argument("--model", default="", help="model name for datajax_plan_info")
    run.add_argument(
        "--xla-cache",
        default=None,
        metavar="DIR",
        help="vLLM's XLA compile cache directory: export the cache hit and the start-up seconds",
    )
    run.add_argument(
        "--settings",
        default=None,
        metavar="FILE",
        help="JSON cost settings re-read every interval; its keys override the flags above",
    )

    offline = sub.add_parser("analyze", help="the figures serve would export for two saved scrapes")
    offline.add_argument("before", type=Path)
    offline.add_argument("after", type=Path)
    offline.add_argument(
        "--seconds", type=_positive(float), required=True, help="seconds between the scrapes"
    )
    _add_pricing(offline, offline=True)
    offline.add_argument("-o", "--output", choices=("json",), default="json")

    timeline = sub.add_parser(
        "record", help="a timeline of the figures per slice, one JSON line per interval, for replay"
    )
    timeline.add_argument(
        "--upstream",
        action="append",
        required=True,
        help="vLLM metrics URL of one slice; repeat once per slice, in a stable order",
    )
    _add_pricing(timeline, offline=True)
    timeline.add_argument("--window", type=parse_duration, default=600.0, help="figures' window (10m)")
    timeline.add_argument("--interval", type=parse_duration, default=30.0, help="between lines (30s)")
    timeline.add_argument("--count", type=_positive(int), default=None, help="stop after this many lines")
    timeline.add_argument("-o", "--output", default="-", help="JSONL file to write ('-': stdout)")
    return parser


def analyze(before: str, after: str, seconds: float, pricing: Pricing) -> Figures:
    """Figures for the window from `before` to `after`, through the same ring `serve` uses."""
    ring = ScrapeRing(window_seconds=seconds)
    ring.add(snapshot(parse(before), 0.0))
    ring.add(snapshot(parse(after), seconds))
    return figures(ring.window(), pricing)


def _record(args: argparse.Namespace) -> int:
    timeout = min(5.0, args.interval)
    recorder = Recorder(args.upstream, _pricing(args), args.window, lambda url: fetch(url, timeout))
    count = int(args.count) if args.count else None
    try:
        if args.output == "-":
            record(recorder, sys.stdout, args.interval, count)
        else:
            with Path(args.output).open("w", encoding="utf-8") as out:
                record(recorder, out, args.interval, count)
    except OSError as err:
        print(f"datajax-sidecar record: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "analyze":
        try:
            result = analyze(
                args.before.read_text(encoding="utf-8"),
                args.after.read_text(encoding="utf-8"),
                args.seconds,
                _pricing(args),
            )
        except OSError as err:
            print(f"datajax-sidecar analyze: {err}", file=sys.stderr)
            return 2
        except ExpositionError as err:
            print(f"datajax-sidecar analyze: malformed exposition: {err}", file=sys.stderr)
            return 2
        json.dump(result.to_json(), sys.stdout, indent=2, sort_keys=False, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    if args.command == "record":
        return _record(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flags = {
        "chips": args.chips,
        "usdPerChipHour": args.usd_per_chip_hour,
        "ceilingUSDPerMillionTokens": args.ceiling,
        "basis": args.basis,
        "window": args.window,
        "minTokensPerSecond": args.min_tokens_per_second,
        "sloP95Seconds": args.slo_p95,
    }
    try:
        file = settings.read_settings(args.settings) if args.settings else None
        initial = settings.resolve(flags, file)
    except settings.SettingsError as err:
        print(f"datajax-sidecar serve: {err}", file=sys.stderr)
        return 2
    config = SidecarConfig(
        upstream=args.upstream,
        pricing=initial.pricing,
        window_seconds=initial.window_seconds,
        interval_seconds=args.interval,
        port=args.port,
        host=args.host,
        slo_p95_seconds=initial.slo_p95_seconds,
        plan_status_path=args.plan_status,
        model=args.model,
        settings_path=args.settings,
        flag_settings=flags,
        xla_cache_dir=args.xla_cache,
    )
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
