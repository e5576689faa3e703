"""Bad input through the real API server: every object is refused at admission naming a field, or
accepted and then planned or flagged SpecValid=False with a reason; the operator never crashes and
never logs a traceback.

Most objects are sent with dryRun=All (admission runs in full: schema, defaults, CEL; nothing is
stored), and so are the children the operator would apply for them; a sample is created for real for
a running operator process, whose log is captured.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cluster_state import MODEL_PATH, ClusterState
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubehelpers import GROUP, VERSION, wait_for
from operator_process import OperatorProcess
from pydantic import ValidationError
from spec_fuzz import model_name, model_spec

from datajax_devtools.localcluster import LocalCluster
from datajax_operator.api.resource import DataJaxModel
from datajax_operator.kube import apply_body
from datajax_operator.plan.config import OperatorConfig
from datajax_operator.plan.planner import make_plan
from datajax_operator.plan.problems import PlanError
from datajax_operator.render.objects import render_objects

pytestmark = pytest.mark.integration

BATCH = 10
BATCHES = 110
"""≥ 1000 objects; hypothesis may discard a few batches, the test counts what was really sent."""
REAL_EVERY = 6
"""One accepted object in this many is created for real (about 40) for the operator."""
FIELD = re.compile(r"\b(spec(\.[A-Za-z0-9_\[\]]+)*|metadata\.name)\b")
CHILD_PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    "LeaderWorkerSet": "/apis/leaderworkerset.x-k8s.io/v1/namespaces/{ns}/leaderworkersets/{name}",
    "Service": "/api/v1/namespaces/{ns}/services/{name}",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps/{name}",
}


def _doc(name: str, spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DataJaxModel",
        "metadata": {"name": name},
        "spec": spec,
    }


def _offline(stored: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """What the operator's reconcile makes of a stored object: children, or the problem it reports."""
    try:
        model = DataJaxModel.model_validate(stored)
        plan = make_plan(model, OperatorConfig())
    except ValidationError as err:
        return [], f"validation: {err.errors()[0]['loc']}"
    except PlanError as err:
        assert err.problems and all(p.field.startswith("spec") for p in err.problems), err.problems
        return [], f"plan: {err.problems[0].field}"
    return render_objects(model, plan, OperatorConfig()), None


def test_fuzzed_models_are_refused_flagged_or_planned(
    state: ClusterState, namespace: str, local_cluster: LocalCluster, tmp_path: Path, solo: None
) -> None:
    outcomes: Counter[str] = Counter()
    refused_fields: Counter[str] = Counter()
    examples: dict[str, str] = {}
    real: list[str] = []
    log = tmp_path / "operator.log"
    operator = OperatorProcess(local_cluster.kubeconfig, log, resync_seconds=3600)
    operator.wait_ready()
    t0 = time.monotonic()

    def check(name: str, spec: Any, mutated: list[str]) -> None:
        doc = _doc(name, spec)
        status, body = state.call(
            "POST",
            MODEL_PATH.format(ns=namespace),
            doc,
            query=[("dryRun", "All"), ("fieldValidation", "Strict")],
        )
        outcomes["sent"] += 1
        if status in (400, 422):
            message = body["message"] if isinstance(body, dict) else str(body)
            named = FIELD.search(message)
            assert named, f"refusal names no field: {message!r} (mutated {mutated})"
            outcomes["refused at admission"] += 1
            field = named.group(0).split("[")[0]
            refused_fields[field] += 1
            examples.setdefault(field, message[:300])
            return
        assert status == 201, f"HTTP {status} for {doc}: {body}"
        children, problem = _offline(body)
        if problem is not None:
            outcomes[f"accepted, flagged ({problem.split(':')[0]})"] += 1
        else:
            for child in children:  # the applies the operator would make, dry-run
                meta = child["metadata"]
                status, reply = state.call(
                    "PATCH",
                    CHILD_PATHS[child["kind"]].format(ns=namespace, name=meta["name"]),
                    apply_body(child),  # exactly the bytes the operator sends
                    query=[("dryRun", "All"), ("fieldManager", "datajax-operator"), ("force", "true")],
                    content_type="application/apply-patch+yaml",
                )
                # A 500 "failed to create typed patch object" is the operator's 422 (kube.apply)
                typed = status == 500 and reply["message"].startswith("failed to create typed patch object")
                assert status in (200, 201, 400, 422) or typed, (
                    f"HTTP {status} applying {child['kind']}: {reply}"
                )
                if status >= 400:
                    # The content may be refused; our encoding of it never.
                    assert "error decoding patch" not in reply["message"], reply["message"]
                    outcomes["accepted, child refused (flagged)"] += 1
                    break
            else:
                outcomes["accepted, planned"] += 1
        if name != "fz":
            return
        outcomes["accepted, plain name"] += 1
        if outcomes["accepted, plain name"] % REAL_EVERY == 1:
            real_name = f"real-{len(real)}"
            created = state.create_model(namespace, _doc(real_name, spec))
            assert created["metadata"]["name"] == real_name
            real.append(real_name)

    @settings(
        max_examples=BATCHES,
        deadline=None,
        database=None,
        # No shrinking: each step is a round trip to the API server; a failing batch of ten is
        # printed as it is.
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(st.tuples(model_name(), model_spec()), min_size=BATCH, max_size=BATCH))
    def batches(batch: list[tuple[str, tuple[dict[str, Any], list[str]]]]) -> None:
        for name, (spec, mutated) in batch:
            check(name, spec, mutated)

    try:
        batches()
        dry_run_seconds = time.monotonic() - t0

        def processed(name: str) -> bool:
            model = state.model(namespace, name) or {}
            conditions = {c["type"]: c for c in (model.get("status") or {}).get("conditions", [])}
            valid = conditions.get("SpecValid")
            return bool(valid and valid["reason"] and valid["status"] in ("True", "False"))

        wait_for(lambda: all(processed(n) for n in real), 120, "the operator to process every real object")
        verdicts = Counter(
            (state.condition(namespace, n, "SpecValid") or {}).get("status", "?") for n in real
        )
        for name in real:
            valid = state.condition(namespace, name, "SpecValid") or {}
            if valid["status"] == "False":
                assert valid["message"], name
        logs = operator.logs()
        assert operator.popen.poll() is None, "the operator crashed"
        assert "Traceback" not in logs, logs[logs.index("Traceback") - 2000 : logs.index("Traceback") + 3000]
        assert operator.metric("datajax_operator_reconcile_errors_total") == 0
        print(
            f"\nfuzz: {dict(outcomes)}\nrefused, by field named: {dict(refused_fields.most_common(12))}\n"
            f"real: {len(real)} created, SpecValid {dict(verdicts)}; dry-run phase {dry_run_seconds:.1f} s, "
            f"total {time.monotonic() - t0:.1f} s\nrefusal of the whole spec: {examples.get('spec')}"
        )
        assert outcomes["sent"] >= 1000
        assert outcomes["refused at admission"] > 100 and outcomes["accepted, planned"] > 100
        assert len(real) >= 30
    finally:
        operator.stop()
