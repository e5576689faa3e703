"""Unit tests of the hardening helpers: apply bodies YAML reads back exactly, bounded YAML loading,
the peering pause rule, and the ChildNotOwned verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from datajax_operator.kube import apply_body
from datajax_operator.peering import POD_NAME_PRIORITIES, Peering, paused_by_peers, priority_from_name
from datajax_operator.status.evaluate import Evaluation, evaluate
from datajax_operator.status.observations import Observations, WorkloadObservation
from datajax_operator.yamlload import DocumentTooLarge, load_bounded

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_apply_body_reads_back_exactly_as_yaml(text: str) -> None:
    """The server parses apply bodies as YAML: any user string must survive that, surrogates aside."""
    body = apply_body({"args": [text], text: 1} if text else {"args": [text]})
    assert yaml.safe_load(body.decode("utf-8")) == json.loads(body)
    assert json.loads(body)["args"] == [text]


def test_apply_body_writes_emoji_as_itself() -> None:
    body = apply_body({"a": "🙂"})
    assert b"\\ud83d" not in body and "🙂".encode() in body


def test_alias_bomb_is_refused_and_anchors_still_load() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    with pytest.raises(DocumentTooLarge):
        load_bounded(bomb)
    assert load_bounded("base: &b {x: 1}\nother: *b\n") == {"base": {"x": 1}, "other": {"x": 1}}


def _peering(priority: int = 10) -> Peering:
    return Peering(name="p", identity="me", priority=priority, namespaces=())


def _peer(priority: int, seen: datetime, lifetime: int = 60) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


@pytest.mark.parametrize(
    ("peers", "paused"),
    [
        ({}, False),
        ({"me": _peer(10, NOW)}, False),
        ({"other": _peer(20, NOW)}, True),
        ({"other": _peer(10, NOW)}, True),  # equal priority: kopf pauses both
        ({"other": _peer(5, NOW)}, False),
        ({"other": _peer(20, NOW - timedelta(seconds=61))}, False),  # dead
        ({"other": _peer(20, NOW - timedelta(seconds=5), lifetime=4)}, False),
        ({"other": {"priority": 20}}, False),  # unreadable: not a live peer
    ],
)
def test_paused_by_peers(peers: dict[str, object], paused: bool) -> None:
    assert paused_by_peers({"status": peers}, _peering(), NOW) is paused


def test_missing_peering_object_pauses() -> None:
    assert paused_by_peers(None, _peering(), NOW) is True


def test_pod_names_give_replicas_priorities_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pods of one ReplicaSet, same template: distinct priorities, each stable across restarts of
    the process, below any priority a person would give a preempting operator."""
    pods = [f"djx-datajax-operator-5d8f7c9b4-{s}" for s in ("q2xkz", "wm7p4", "bc9dd", "x8x8x")]
    priorities = [priority_from_name(p) for p in pods]
    assert len(set(priorities)) == len(pods)
    assert all(1 <= p < POD_NAME_PRIORITIES for p in priorities)
    assert priorities == [priority_from_name(p) for p in pods]
    from datajax_operator.cli import build_parser

    monkeypatch.setenv("POD_NAME", pods[0])
    args = build_parser().parse_args(["run", "--peering", "p", "--priority", "pod-name"])
    assert args.priority == priorities[0]
    assert build_parser().parse_args(["run", "--priority", "7"]).priority == 7


def test_child_not_owned_is_reported_before_availability() -> None:
    from datajax_operator.api.resource import DataJaxModel
    from datajax_operator.plan.config import OperatorConfig
    from datajax_operator.plan.planner import make_plan

    model = DataJaxModel.model_validate(
        {
            "apiVersion": "datajax.dev/v1alpha1",
            "kind": "DataJaxModel",
            "metadata": {"name": "m"},
            "spec": {"model": {"name": "org/m"}, "tpu": {"generation": "v6e", "topology": "2x4"}},
        }
    )
    plan = make_plan(model, OperatorConfig())
    observations = Observations(
        workload=WorkloadObservation("Deployment", "m", 1, 1), not_owned=("Service/m",)
    )
    status = evaluate(Evaluation(plan=plan, problems=[]), observations, 1, None, NOW)
    conditions = {c.type: c for c in status.conditions}
    assert conditions["WorkloadAvailable"].reason == "ChildNotOwned"
    assert "Service/m" in conditions["WorkloadAvailable"].message
    assert conditions["Ready"].status == "False"
    assert status.phase == "Pending"
