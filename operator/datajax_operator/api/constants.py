"""Names of the DataJaxModel API that other code, the CRD and users all depend on.

They live in one module so that the group, version and condition types can never drift apart between
the CRD, the operator and the docs.
"""

from typing import Final

GROUP: Final = "datajax.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "DataJaxModel"
LIST_KIND: Final = "DataJaxModelList"
PLURAL: Final = "datajaxmodels"
SINGULAR: Final = "datajaxmodel"
SHORT_NAME: Final = "djm"

# Condition types (metav1.Condition.type). Each is True when the sentence after it holds.

SPEC_VALID: Final = "SpecValid"
"""The spec and its plan passed every pre-flight check; when False the reason names the failing check."""

WORKLOAD_AVAILABLE: Final = "WorkloadAvailable"
"""The Deployment or LeaderWorkerSet reports available replicas."""

METRICS_AVAILABLE: Final = "MetricsAvailable"
"""The serving sidecars were scraped successfully within the last few scrape intervals."""

PLAN_REGISTERED: Final = "PlanRegistered"
"""The sidecar reports the DataJAX plan registered with tpu-inference (only set when a plan is given)."""

DEVICES_MATCH: Final = "DevicesMatch"
"""The TPU devices JAX enumerated in every serving pod match the planned slice (only set when a plan is
given; False with reason Mismatch needs a person: vLLM keeps serving on the devices it found)."""

COST_CEILING_BREACHED: Final = "CostCeilingBreached"
"""Measured $/Mtok stayed above the ceiling for the whole window.

Unknown with reason InsufficientTraffic or NoMetrics when the cost cannot be judged.
"""

LATENCY_SLO_BREACHED: Final = "LatencySLOBreached"
"""p95 latency stayed above spec.slo.p95LatencySeconds (only set when an SLO is given)."""

SCALING_FEASIBLE: Final = "ScalingFeasible"
"""Some replica count within spec.scaling's bounds keeps both p95 under the SLO and $/Mtok under the
ceiling at the measured demand (only set with spec.scaling); False with reason CostSLOInfeasible and the
figures when none does, and spec.scaling.policy decides which bound gives."""

COMPILE_GATE: Final = "CompileGate"
"""The model's serving program, compiled by libtpu's TPU compiler for the planned slice and mesh in the
gate Job, fits every device's HBM (only set with spec.plan.compileGate). Unknown with reason Compiling
while the Job runs; True with reason Fits and the per-device figures; False with reason DoesNotFit (the
figures and the largest arrays per device) or GateFailed (the Job ended without a verdict). While it is
not True the workload is not rendered for the spec (one already serving keeps serving) and Ready is
False."""

READY: Final = "Ready"
"""SpecValid and WorkloadAvailable are both True, and CompileGate too when spec.plan.compileGate is
on: `kubectl wait --for=condition=Ready djm/NAME` waits on it."""
