"""The CompileGate condition, and whether the gate lets the workload be rendered: pure functions of the
gate Job's observation (``status.observations.GateObservation``).

The verdict is the compact one ``datajax_runtime.compile_gate --termination-log`` writes: per-device
bytes from libtpu's ``memory_analysis()`` against the usable share of the device's HBM, or the
compiler's own refusal (RESOURCE_EXHAUSTED) for a program that cannot fit at all.
"""

from typing import Any, Final

from datajax_operator.api.constants import COMPILE_GATE
from datajax_operator.status.conditions import Verdict
from datajax_operator.status.observations import GateObservation

COMPILING: Final = "Compiling"
"""CompileGate Unknown: the gate Job has not ended yet; the workload waits."""
FITS: Final = "Fits"
"""CompileGate True: the compiled program's peak per device is within the usable HBM; rendered."""
DOES_NOT_FIT: Final = "DoesNotFit"
"""CompileGate False: over the usable HBM, or the compiler refused (RESOURCE_EXHAUSTED); held."""
GATE_FAILED: Final = "GateFailed"
"""CompileGate False: the Job ended without a verdict (e.g. the pod failed or was evicted); held."""

HOLD_NOTE: Final = (
    "the workload is not rendered for this spec (a workload already serving keeps its last rendered form)"
)


def gate_passes(observation: GateObservation | None) -> bool:
    """Whether the workload may be rendered: no gate asked for, or the compiled program fits."""
    if observation is None:
        return True
    return observation.verdict is not None and observation.verdict.get("fits") is True


def _gb(value: Any) -> str:
    return f"{value / 1e9:.2f} GB" if isinstance(value, int | float) else "unknown"


def _figures(verdict: dict[str, Any]) -> str:
    per = verdict.get("perDevice") or {}
    program = verdict.get("program") or {}
    mesh = program.get("mesh") or {}
    return (
        f"{verdict.get('target')} ({verdict.get('devices')} x {verdict.get('deviceKind')}), mesh "
        f"data={mesh.get('data')} x model={mesh.get('model')}, {program.get('model')} of "
        f"{program.get('layers')} layers: per device arguments {_gb(per.get('argumentBytes'))}, "
        f"temporaries {_gb(per.get('temporaryBytes'))}, outputs {_gb(per.get('outputBytes'))}; peak "
        f"{_gb(verdict.get('peakBytesPerDevice'))} of {_gb(verdict.get('usableBytesPerDevice'))} usable "
        f"({_gb(verdict.get('hbmBytesPerDevice'))} HBM)"
    )


def _why_not(verdict: dict[str, Any]) -> str:
    program = verdict.get("program") or {}
    refused = program.get("compilerRefused") or {}
    parts = [f"the compiler refused the {step} step: {message}" for step, message in sorted(refused.items())]
    arrays = verdict.get("largestArrays") or []
    if arrays:
        parts.append(
            "largest arrays per device: "
            + ", ".join(
                f"{a.get('name')} {_gb(a.get('bytesPerDevice'))}"
                + (f" ({a['layers']} layers)" if "layers" in a else "")
                for a in arrays
            )
        )
    return "; ".join(parts)


def gate_condition(observation: GateObservation) -> Verdict:
    """CompileGate: Unknown/Compiling while the Job runs, True/Fits or False/DoesNotFit with the
    figures, False/GateFailed when the Job ended without a verdict."""
    job = f"Job {observation.job}"
    verdict = observation.verdict
    if verdict is not None:
        if verdict.get("fits") is True:
            return Verdict(COMPILE_GATE, "True", FITS, f"{_figures(verdict)} ({job})")
        why = _why_not(verdict)
        return Verdict(
            COMPILE_GATE,
            "False",
            DOES_NOT_FIT,
            f"does not fit: {_figures(verdict)}" + (f"; {why}" if why else "") + f"; {HOLD_NOTE} ({job})",
        )
    if observation.failure is not None:
        return Verdict(
            COMPILE_GATE,
            "False",
            GATE_FAILED,
            f"{job} ended without a verdict: {observation.failure}; {HOLD_NOTE}",
        )
    return Verdict(
        COMPILE_GATE,
        "Unknown",
        COMPILING,
        f"{job} compiles the serving program with libtpu for the planned slice; {HOLD_NOTE} until it fits",
    )
