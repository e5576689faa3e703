"""The operator's compile gate (spec.plan.compileGate), the pure parts: the Job's renderer, the verdict
read from the gate pod, the CompileGate condition, Ready, and the runtime's compact termination message."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from djm_fixtures import doc_with

from datajax_operator.api import DataJaxModel
from datajax_operator.cli import main as cli_main
from datajax_operator.decide import decide
from datajax_operator.observe import gate_finished, gate_observation
from datajax_operator.plan import OperatorConfig, make_plan
from datajax_operator.plan.gate_request import gate_request, model_shape_from_spec
from datajax_operator.render.gate import GATE_CONTAINER, gate_job, gate_job_name
from datajax_operator.status import (
    Evaluation,
    Observations,
    WorkloadObservation,
    actionable_transitions,
    evaluate,
)
from datajax_operator.status.gate import gate_condition, gate_passes
from datajax_operator.status.observations import GateObservation
from datajax_runtime.compile_gate import TERMINATION_MESSAGE_LIMIT, compact_verdict, main

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
SHAPES = {"attentionHeads": 12, "kvHeads": 2, "numLayers": 28, "headDim": 128, "parametersBillions": 1.5}
FIXTURES = Path(__file__).parent / "gate"


def gated_doc(**model: Any) -> dict[str, Any]:
    doc = doc_with(
        model={"name": "Qwen/Qwen2.5-1.5B-Instruct", "dtype": "bfloat16", **SHAPES, **model},
        tpu={"generation": "v5e", "topology": "2x2"},
        mesh={"axes": ["data", "model"], "shape": [2, 2]},
        plan={"compileGate": True},
    )
    doc["metadata"]["uid"] = "0f0f0f0f-0000-4000-8000-000000000001"
    return doc


def request_of(doc: dict[str, Any]) -> dict[str, Any]:
    model = DataJaxModel.model_validate(doc)
    return gate_request(make_plan(model, OperatorConfig()), model.spec, model_shape_from_spec(model.spec))


def job_of(doc: dict[str, Any], config: OperatorConfig | None = None) -> dict[str, Any]:
    config = config or OperatorConfig()
    return gate_job(DataJaxModel.model_validate(doc), request_of(doc), config)


def verdict(name: str) -> dict[str, Any]:
    """A compact verdict as the runtime wrote it for a real compile (tests/unit/gate/, see README)."""
    found: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return found


# --- the Job -------------------------------------------------------------------------------------------


def test_the_gate_job_runs_the_runtime_image_on_a_cpu_node_locked_down() -> None:
    job = job_of(gated_doc())
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == OperatorConfig().runtime_image
    assert container["command"] == ["python3", "-m", "datajax_runtime.compile_gate"]
    assert "google.com/tpu" not in json.dumps(container["resources"])
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] <= 2
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["capabilities"] == {"drop": ["ALL"]} and not security["allowPrivilegeEscalation"]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner["controller"] and owner["kind"] == "DataJaxModel" and owner["uid"].startswith("0f0f")


def test_the_request_travels_as_an_argument_and_is_the_one_validate_mesh_compiles() -> None:
    doc = gated_doc()
    args = job_of(doc)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "--request" and args[2:] == ["--termination-log", "/dev/termination-log"]
    assert json.loads(args[1]) == request_of(doc)
    assert len(args[1]) < 1024


def test_the_gate_pod_is_never_selected_as_a_serving_pod() -> None:
    """The Service and the unscheduled-pod check select app.kubernetes.io/name=datajax-model."""
    labels = job_of(gated_doc())["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] != "datajax-model"


def test_the_job_name_follows_the_request_and_the_image_only() -> None:
    base = gated_doc()
    name = job_of(base)["metadata"]["name"]
    assert name == job_of(gated_doc())["metadata"]["name"]  # deterministic: no churn
    assert name.startswith("m-gate-") and len(name) <= 63
    longer = gated_doc(maxModelLen=8192)
    assert job_of(longer)["metadata"]["name"] != name  # a changed plan compiles again
    other_image = OperatorConfig(runtime_image="example.org/datajax-runtime:v9")
    assert job_of(base, other_image)["metadata"]["name"] != name  # a Job's template cannot change
    costlier = gated_doc()
    costlier["spec"]["cost"] = {"ceilingUSDPerMillionTokens": 9.0}
    assert job_of(costlier)["metadata"]["name"] == name  # nothing the compile reads


def test_a_long_model_name_keeps_the_job_name_a_dns_label() -> None:
    name = gate_job_name("a" * 253, {"x": 1}, "img:v1")
    assert len(name) <= 63 and name[0].isalpha()


def test_without_shape_hints_the_gate_is_refused_naming_the_fields() -> None:
    doc = gated_doc()
    del doc["spec"]["model"]["numLayers"], doc["spec"]["model"]["headDim"]
    decision = decide(doc, OperatorConfig(), (), T0, wave_spec=None)
    assert decision.evaluation.plan is None and decision.gate is None
    (problem,) = decision.evaluation.problems
    assert problem.field == "spec.plan.compileGate"  # the same rule the API server's CEL applies
    assert "model.numLayers" in problem.message and "model.headDim" in problem.message


def test_decide_renders_the_gate_only_when_asked() -> None:
    doc = gated_doc()
    assert decide(doc, OperatorConfig(), (), T0, wave_spec=None).gate == job_of(doc)
    doc["spec"]["plan"] = {"compileGate": False}
    assert decide(doc, OperatorConfig(), (), T0, wave_spec=None).gate is None


# --- the verdict, read from the gate pod ----------------------------------------------------------------


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "m-gate-0123456789", "namespace": "ns"}, "status": status}


def pod(message: str, exit_code: int = 0, finished: str = "2026-12-01T12:00:00Z") -> dict[str, Any]:
    terminated = {"exitCode": exit_code, "reason": "Completed", "message": message, "finishedAt": finished}
    return {"status": {"containerStatuses": [{"name": GATE_CONTAINER, "state": {"terminated": terminated}}]}}


def test_a_running_gate_is_compiling() -> None:
    running = job(active=1)
    assert not gate_finished(running)
    observed = gate_observation(running, [], GATE_CONTAINER)
    assert observed == GateObservation("m-gate-0123456789")
    condition = gate_condition(observed)
    assert (condition.status, condition.reason) == ("Unknown", "Compiling")
    assert not gate_passes(observed)


def test_a_fitting_verdict_passes_with_its_figures() -> None:
    fits = verdict("qwen-fits.json")
    observed = gate_observation(job(succeeded=1), [pod(json.dumps(fits))], GATE_CONTAINER)
    assert observed.verdict == fits and gate_passes(observed)
    condition = gate_condition(observed)
    assert (condition.status, condition.reason) == ("True", "Fits")
    assert "v5e:2x2" in condition.message and "peak 3.50 GB of 15.46 GB usable" in condition.message
    assert "Llama-shaped decoder" in condition.message


def test_a_verdict_that_does_not_fit_holds_and_names_the_refusal_and_the_largest_arrays() -> None:
    refused = verdict("qwen-does-not-fit.json")
    observed = gate_observation(job(succeeded=1), [pod(json.dumps(refused))], GATE_CONTAINER)
    assert not gate_passes(observed)
    condition = gate_condition(observed)
    assert (condition.status, condition.reason) == ("False", "DoesNotFit")
    assert "RESOURCE_EXHAUSTED" in condition.message and "prefill" in condition.message
    assert refused["largestArrays"][0]["name"] in condition.message
    assert "not rendered" in condition.message


def test_a_failed_job_without_a_verdict_is_a_gate_failure_with_the_reason() -> None:
    failed = job(
        failed=2, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
    )
    crashed = pod("Traceback ...\nImportError: libtpu.so: cannot open shared object file", exit_code=1)
    observed = gate_observation(failed, [crashed], GATE_CONTAINER)
    condition = gate_condition(observed)
    assert (condition.status, condition.reason) == ("False", "GateFailed")
    assert "libtpu.so" in condition.message and "exit code 1" in condition.message
    refused = pod(json.dumps({"error": "model.layers: must be positive"}), exit_code=2)
    condition = gate_condition(gate_observation(failed, [refused], GATE_CONTAINER))
    assert condition.reason == "GateFailed" and "must be positive" in condition.message
    bare = gate_condition(gate_observation(failed, [], GATE_CONTAINER))
    assert bare.reason == "GateFailed" and "BackoffLimitExceeded" in bare.message


def test_a_failed_first_pod_does_not_hide_a_later_verdict() -> None:
    fits = json.dumps(verdict("qwen-fits.json"))
    pods = [
        pod(fits, finished="2026-12-01T12:05:00Z"),
        pod("OOMKilled", 137, finished="2026-12-01T12:00:00Z"),
    ]
    assert gate_passes(gate_observation(job(succeeded=1, failed=1), pods, GATE_CONTAINER))


# --- status and Ready -----------------------------------------------------------------------------------


def test_ready_waits_for_the_gate_even_when_an_older_workload_serves() -> None:
    doc = gated_doc()
    plan = make_plan(DataJaxModel.model_validate(doc), OperatorConfig())
    serving = WorkloadObservation("Deployment", "m", desired=1, available=1)
    held = Observations(workload=serving, gate=GateObservation("m-gate-0123456789"))
    status = evaluate(Evaluation(plan=plan, problems=[]), held, 2, None, T0)
    by_type = {c.type: c for c in status.conditions}
    assert by_type["CompileGate"].status == "Unknown"
    assert by_type["WorkloadAvailable"].status == "True"  # what serves keeps serving, and is reported
    assert (by_type["Ready"].status, by_type["Ready"].reason) == ("False", "CompileGateHeld")
    passed = replace(held, gate=GateObservation("m-gate-0123456789", verdict=verdict("qwen-fits.json")))
    by_type = {
        c.type: c for c in evaluate(Evaluation(plan=plan, problems=[]), passed, 2, None, T0).conditions
    }
    assert by_type["CompileGate"].status == "True" and by_type["Ready"].status == "True"
    ungated = evaluate(Evaluation(plan=plan, problems=[]), replace(held, gate=None), 2, None, T0)
    assert "CompileGate" not in {c.type for c in ungated.conditions}


# --- the runtime's compact verdict --------------------------------------------------------------------


def full_verdict(refusal: str, arrays: int) -> dict[str, Any]:
    """A verdict in the shape `run_gate` returns, with a long refusal and many large arrays."""
    step = {"argumentBytes": 1, "temporaryBytes": None, "outputBytes": None, "compileSeconds": 1.0}
    return {
        "fits": False,
        "devices": 4,
        "deviceKind": "TPU v5 lite",
        "perDevice": {"argumentBytes": 1, "temporaryBytes": None, "outputBytes": None},
        "peakBytesPerDevice": None,
        "hbmBytesPerDevice": 16 * 10**9,
        "usableBytesPerDevice": 14 * 10**9,
        "compiler": {"jax": "0.11.0", "jaxlib": "0.11.0", "libtpu": "0.0.44"},
        "target": "v5e:2x2",
        "program": {
            "model": "Llama-shaped decoder (datajax_runtime.compile_gate), not tpu-inference's model code",
            "mesh": {"data": 2, "model": 2},
            "layers": 28,
            "steps": {"decode": step, "prefill": step | {"compilerRefused": refusal}},
            "compileCpuSeconds": 9.0,
        },
        "largestArrays": [
            {"name": "p" * 1500, "shape": [1] * 200, "dtype": "bfloat16", "bytesPerDevice": i}
            for i in range(arrays)
        ],
    }


def test_the_compact_verdict_stays_under_the_termination_message_limit() -> None:
    text = compact_verdict(full_verdict("RESOURCE_EXHAUSTED: " + "x" * 10_000, arrays=10))
    doc = json.loads(text)
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    assert {"fits", "devices", "perDevice", "hbmBytesPerDevice", "compiler", "target", "program"} <= set(doc)
    assert doc["program"]["compilerRefused"]["prefill"].startswith("RESOURCE_EXHAUSTED")
    assert 0 < len(doc["largestArrays"]) < 3  # the arrays that fit, largest first
    assert "shape" not in doc["largestArrays"][0]


def test_the_gate_job_mode_writes_the_error_and_exits_2(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    assert main(["--request", json.dumps({"topology": "v5e:2x2"}), "--termination-log", str(log)]) == 2
    assert "error" in json.loads(log.read_text())


def test_a_quantised_model_cannot_be_gated_and_says_so() -> None:
    """The gate's program compiles bfloat16/float16/float32 weights; int8 layouts are tpu-inference's."""
    decision = decide(gated_doc(dtype="int8"), OperatorConfig(), (), T0, wave_spec=None)
    (problem,) = decision.evaluation.problems
    assert problem.field == "spec.plan.compileGate" and "int8" in problem.message
    status = evaluate(decision.evaluation, Observations(workload=None), 1, None, T0)
    assert next(c for c in status.conditions if c.type == "SpecValid").reason == "CompileGateUnusable"


def test_a_held_gate_is_a_warning_event_and_its_end_is_news() -> None:
    doc = gated_doc()
    plan = make_plan(DataJaxModel.model_validate(doc), OperatorConfig())
    running = Observations(workload=None, gate=GateObservation("m-gate-0123456789"))
    compiling = evaluate(Evaluation(plan=plan, problems=[]), running, 1, None, T0)
    refused = replace(running, gate=replace(running.gate, verdict=verdict("qwen-does-not-fit.json")))
    held = evaluate(Evaluation(plan=plan, problems=[]), refused, 1, compiling, T0)
    (warning,) = [t for t in actionable_transitions(compiling.conditions, held.conditions)]
    assert (warning.condition.type, warning.event_type) == ("CompileGate", "Warning")
    fits = replace(running, gate=replace(running.gate, verdict=verdict("qwen-fits.json")))
    passed = evaluate(Evaluation(plan=plan, problems=[]), fits, 2, held, T0)
    news = {
        t.condition.type: t.event_type for t in actionable_transitions(held.conditions, passed.conditions)
    }
    assert news.get("CompileGate") == "Normal"


def test_plan_lists_the_gate_job_first_and_refuses_what_cannot_be_gated(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`plan -o json` shows what the operator applies: the gate Job before the workload; a spec the gate
    cannot compile exits 2 naming spec.plan.compileGate, as SpecValid does in the cluster."""
    doc = gated_doc()
    path = tmp_path / "gated.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert cli_main(["plan", "-f", str(path), "-o", "json"]) == 0
    objects = json.loads(capsys.readouterr().out)["objects"]
    assert objects[0] == decide(doc, OperatorConfig(), (), T0, wave_spec=None).gate
    assert [o["kind"] for o in objects[1:]].count("Job") == 0 and "Deployment" in {o["kind"] for o in objects}

    path.write_text(json.dumps(gated_doc(dtype="int8")), encoding="utf-8")
    assert cli_main(["plan", "-f", str(path), "-o", "json"]) == 2
    assert "spec.plan.compileGate" in capsys.readouterr().err
