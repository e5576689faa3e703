"""The `datajax-operator status` screens (pure): golden text, unknown reasons, verdicts, Event shapes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from djm_fixtures import ROOT, check_golden
from status_fixtures import (
    NOW,
    PLAN,
    applied_model,
    breached_model,
    core_event,
    fresh_model,
    invalid_model,
    new_event,
    ready_events,
    ready_model,
    unjudged_model,
)

from datajax_operator.status.screen import age, render_fleet, render_model, window_seconds
from datajax_operator.status.summary import ModelSummary, event_line, recent_events

MODELS: dict[str, Callable[[], dict[str, Any]]] = {
    "ready": ready_model,
    "breached": breached_model,
    "unjudged": unjudged_model,
    "invalid": invalid_model,
    "fresh": fresh_model,
    "applied": applied_model,
}


def screen(doc: dict[str, Any], events: list[dict[str, Any]] | None = None) -> str:
    return render_model(ModelSummary.from_document(doc), recent_events(events or [], 10), NOW)


@pytest.mark.parametrize("name", list(MODELS))
def test_golden_screens(name: str) -> None:
    events = ready_events() if name == "ready" else []
    check_golden(f"status-{name}.txt", screen(MODELS[name](), events))


def test_golden_fleet() -> None:
    summaries = [ModelSummary.from_document(make()) for make in MODELS.values()]
    summaries.append(ModelSummary.from_document(dict(ready_model(), metadata={
        **ready_model()["metadata"], "namespace": "research", "name": "llama3-8b-eval"})))  # fmt: skip
    check_golden("status-fleet.txt", render_fleet(summaries, NOW, with_namespace=True))
    one_namespace = render_fleet(summaries[:1], NOW, with_namespace=False)
    assert one_namespace.startswith("NAME ") and "serving" not in one_namespace.split("\n")[1]


def test_ready_screen_shows_every_figure_against_its_limit() -> None:
    text = screen(ready_model(), ready_events())
    cost = 21.6 / (2592.6 * 3600) * 1e6
    assert f"$/Mtok      {cost:.3f}" in text
    assert f"headroom {(3 - round(cost, 3)) / 3 * 100:.1f}%" in text
    assert f"break-even  {PLAN.cost.breakeven_tokens_per_second:,.1f} tokens/s" in text
    assert f"{2592.6 / PLAN.cost.breakeven_tokens_per_second:.2f}x break-even" in text
    assert "SLO 5.000 s" in text and "headroom 63.2%" in text
    assert "prefix hit  41.2%" in text
    assert "sampled 12s ago" in text
    assert "OK (exit 0)" in text
    assert "—" not in text


def test_breach_says_over_by_how_much_and_flags_stale_figures() -> None:
    text = screen(breached_model())
    assert "ATTENTION (exit 1): CostCeilingBreached, LatencySLOBreached" in text
    assert re.search(r"OVER the ceiling by \d+\.\d%", text)
    assert "OVER the SLO by 24.0%" in text
    assert "sampled 25m ago (2026-11-26T11:35:00Z), STALE: older than the 10m window" in text
    doc = breached_model()
    doc["spec"]["cost"]["window"] = "30m"
    assert "STALE" not in screen(doc)
    doc["spec"]["cost"]["window"] = "20m"
    assert "STALE: older than the 20m window" in screen(doc)


def test_unknown_figures_carry_their_reason_never_zero() -> None:
    text = screen(unjudged_model())
    assert "$/Mtok      — (InsufficientTraffic)" in text
    assert "tokens/s    — (InsufficientTraffic)" in text
    assert "break-even  — (InsufficientTraffic)" in text
    assert "p95 e2e     — (InsufficientTraffic)  SLO 5.000 s" in text
    assert "$/hour      21.60" in text
    assert "not Ready (WorkloadUnavailable)" in text
    # no metrics block at all: the reason is that nothing reported the figures
    fresh = screen(fresh_model())
    assert "$/Mtok      — (NotReported)" in fresh
    assert "no status yet" in fresh and "not Ready (no status yet)" in fresh


def test_a_new_model_shows_its_planned_cost_until_it_is_measured() -> None:
    """Right after `kubectl apply` the plan already knows the provisioned $/hour (8 v6e chips at the
    catalog price for the 8B example) and the break-even rate: shown, marked as planned; the figures
    only the sidecars can give stay unknown with their reason."""
    text = screen(applied_model())
    hour = re.escape(f"{PLAN.cost.usd_per_hour:,.2f} (planned)")
    assert re.search(rf"\$/hour +{hour} +not measured yet \(NoMetrics\)\n", text), text
    assert f"break-even  {PLAN.cost.breakeven_tokens_per_second:,.1f} tokens/s (planned)\n" in text
    assert "$/Mtok      — (NoMetrics)" in text and "tokens/s    — (NoMetrics)" in text
    fleet = render_fleet([ModelSummary.from_document(applied_model())], NOW, with_namespace=False)
    assert f"{PLAN.cost.usd_per_hour:,.2f} (planned)" in fleet
    figures = ModelSummary.from_document(applied_model()).to_json(NOW)["figures"]
    assert figures["costUSDPerHour"] is None
    assert figures["plannedCostUSDPerHour"] == PLAN.cost.usd_per_hour
    # once a sidecar has measured the $/hour, the measured figures are shown, unmarked
    measured = screen(ready_model())
    assert "(planned)" not in measured and f"$/hour      {PLAN.cost.usd_per_hour:,.2f}\n" in measured


def test_unknown_reason_prefers_the_judging_condition_then_the_scrape() -> None:
    doc = unjudged_model()
    conditions = doc["status"]["conditions"]
    conditions[2] = dict(conditions[2], status="False", reason="NoSidecarEndpoints")
    conditions[3] = dict(conditions[3], status="Unknown", reason="NoMetrics")
    conditions.append(dict(conditions[3], type="LatencySLOBreached", reason="NoRequests"))
    summary = ModelSummary.from_document(doc)
    assert summary.figure(None).unknown_reason == "NoMetrics"
    assert summary.figure(None, "LatencySLOBreached").unknown_reason == "NoRequests"
    del conditions[3:]
    assert ModelSummary.from_document(doc).figure(None).unknown_reason == "NoSidecarEndpoints"


def test_invalid_spec_and_a_status_behind_the_spec_are_said() -> None:
    text = screen(invalid_model())
    assert "status describes generation 1 of 2: the operator is behind" in text
    assert "Placement   — (NoTPUPlacement: spec.tpu.topology: 3x3 is not a v6e topology" in text
    assert "not Ready (SpecInvalid)" in text


@pytest.mark.parametrize(
    ("name", "ready", "breaches", "healthy"),
    [
        ("ready", True, [], True),
        ("breached", True, ["CostCeilingBreached", "LatencySLOBreached"], False),
        ("unjudged", False, [], False),
        ("invalid", False, [], False),
        ("fresh", False, [], False),
    ],
)
def test_verdict(name: str, ready: bool, breaches: list[str], healthy: bool) -> None:
    summary = ModelSummary.from_document(MODELS[name]())
    assert (summary.ready, summary.breaches, summary.healthy) == (ready, breaches, healthy)


def test_unknown_cost_is_not_a_breach() -> None:
    """Unknown (InsufficientTraffic) is not judged: a Ready model with no traffic exits 0."""
    doc = ready_model()
    for c in doc["status"]["conditions"]:
        if c["type"] == "CostCeilingBreached":
            c.update(status="Unknown", reason="InsufficientTraffic")
    assert ModelSummary.from_document(doc).healthy


def test_json_is_the_same_reading() -> None:
    summary = ModelSummary.from_document(ready_model())
    doc = json.loads(json.dumps(summary.to_json(NOW, recent_events(ready_events(), 10))))
    assert doc["healthy"] is True and doc["problems"] == []
    assert doc["placement"]["machineType"] == PLAN.placement.machine_type
    figures = doc["figures"]
    assert figures["ceilingUSDPerMillionTokens"] == 3.0
    assert figures["costHeadroomPercent"] == round((3 - figures["costUSDPerMillionTokens"]) / 3 * 100, 1)
    assert figures["sampledAgeSeconds"] == 12.0 and figures["costUnknownReason"] is None
    assert [e["reason"] for e in doc["events"]][-1] == "BudgetReview"
    unjudged = ModelSummary.from_document(unjudged_model()).to_json(NOW)
    assert unjudged["figures"]["costUSDPerMillionTokens"] is None
    assert unjudged["figures"]["costUnknownReason"] == "InsufficientTraffic"
    assert "events" not in unjudged


def test_both_event_shapes_are_read() -> None:
    core = event_line(core_event("ReplicasAvailable", "up", timedelta(minutes=3), count=4))
    assert (core.type, core.reason, core.message, core.count) == ("Normal", "ReplicasAvailable", "up", 4)
    assert core.last_seen == NOW - timedelta(minutes=3) and core.source == "datajax.dev/operator"
    modern = event_line(new_event("BudgetReview", "a\nnote", timedelta(minutes=2), count=7))
    assert (modern.type, modern.message, modern.count) == ("Warning", "a note", 7)
    assert modern.last_seen == NOW - timedelta(minutes=2) and modern.source == "example.com/budget-bot"
    single = event_line(new_event("Once", "n", timedelta(minutes=2)))
    assert single.count == 1 and single.last_seen == NOW - timedelta(minutes=12)  # eventTime


def test_recent_events_keeps_the_newest_oldest_first() -> None:
    events = [core_event(f"R{i}", "m", timedelta(minutes=i)) for i in range(15)]
    events.append({"reason": "Undated", "message": "no time at all"})
    shown = recent_events(events, 10)
    assert [e.reason for e in shown] == [f"R{i}" for i in range(9, -1, -1)]
    assert recent_events(events, 0) == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-5, "0s"), (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (200, "3m20s"), (600, "10m"),
     (3 * 3600 - 1, "179m"), (3 * 3600, "3h"), (5 * 3600 + 600, "5h10m"), (30 * 3600, "30h"),
     (2 * 86400, "2d"), (3 * 86400 + 4 * 3600, "3d4h"), (40 * 86400, "40d")],
)  # fmt: skip
def test_age_reads_like_kubectl(seconds: int, text: str) -> None:
    assert age(NOW - timedelta(seconds=seconds), NOW) == text


def test_window_seconds() -> None:
    assert [window_seconds(w) for w in ("10m", "90s", "2h", "1h30m", "m", "10", "ten")] == [
        600, 90, 7200, 5400, None, None, None
    ]  # fmt: skip


def test_an_unreadable_status_still_shows_the_rest() -> None:
    doc = ready_model()
    doc["status"]["metrics"]["prefixCacheHitRatio"] = 7  # above 1: the model rejects it
    summary = ModelSummary.from_document(doc)
    assert summary.status_error is not None and not summary.healthy
    text = render_model(summary, [], NOW)
    assert "Status      unreadable (1 unreadable field(s))" in text
    doc["spec"]["cost"] = {"ceilingUSDPerMillionTokens": -1}
    assert ModelSummary.from_document(doc).ceiling is None


def test_docs_sample_screens_are_the_golden_screens() -> None:
    """docs/status-command.md shows the real screens of the fixtures, not drawings of them."""
    text = (ROOT / "docs" / "status-command.md").read_text(encoding="utf-8")
    samples = re.findall(r"<!-- sample: (status-[a-z]+\.txt) -->\n```text\n(.*?)\n```\n", text, re.DOTALL)
    assert [name for name, _ in samples] == ["status-ready.txt", "status-fleet.txt"]
    for name, sample in samples:
        golden = (ROOT / "tests" / "unit" / "golden" / name).read_text(encoding="utf-8")
        assert sample + "\n" == golden, (
            f"docs/status-command.md: the {name} sample differs from the golden file"
        )
