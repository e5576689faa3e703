"""When a pass writes the status (status.writes), and when a child counts as drifted (reconcile)."""

from __future__ import annotations

from datetime import timedelta

from judge_run import CHEAP, DEAR, T0, Run, slice_figures

from datajax_operator.reconcile import drifted
from datajax_operator.status.writes import worth_writing

WINDOW = timedelta(minutes=1)


def test_steady_live_figures_are_written_once_per_cost_window() -> None:
    """Figures that drift by less than the tolerance cost no write until a cost window went by."""
    run = Run(interval=10)
    stored = run.step(0, CHEAP)
    writes = 0
    for t in range(10, 181, 10):
        jitter = 1 + (0.01 if t % 20 else -0.01)
        status = run.step(t, slice_figures(4000 * jitter, 1000 * jitter))
        if worth_writing(stored, status, run.now, WINDOW):
            writes += 1
            stored = status
    # the verdict turns False/UnderCeiling at 60 s (a condition change), then one refresh per window
    assert writes == 3, writes


def test_a_condition_or_a_moved_figure_is_written_at_once() -> None:
    run = Run(interval=10)
    stored = run.step(0, CHEAP)
    moved = run.step(10, slice_figures(4000 * 1.2, 1000 * 1.2))
    assert worth_writing(stored, moved, run.now, WINDOW)
    flipped = Run(interval=10)
    first = flipped.step(0, CHEAP, CHEAP)
    failed = flipped.step(10, CHEAP, None)  # carried: nothing a person acts on changed
    assert not worth_writing(first, failed, flipped.now, WINDOW)
    dear = flipped.step(20, DEAR, DEAR)  # a new run: the evaluation changes
    assert worth_writing(failed, dear, flipped.now, WINDOW)
    assert worth_writing(None, dear, T0, WINDOW)


def test_drift_is_a_rendered_field_changed_not_a_field_added() -> None:
    rendered = {"spec": {"replicas": 2, "template": {"containers": [{"name": "vllm", "args": ["a"]}]}}}
    live = {
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "template": {"containers": [{"name": "vllm", "args": ["a"], "imagePullPolicy": "IfNotPresent"}]},
        },
        "status": {"replicas": 2},
    }
    assert not drifted(rendered, live)
    assert drifted(rendered, {**live, "spec": {**live["spec"], "replicas": 5}})
    edited = {"spec": {**live["spec"], "template": {"containers": [{"name": "vllm", "args": ["a", "b"]}]}}}
    assert drifted(rendered, edited)
    assert not drifted({"limits": {"google.com/tpu": "8"}}, {"limits": {"google.com/tpu": 8}})
