"""DevicesMatch: whether the TPU devices JAX enumerated at start-up match the slice the plan paid for.

The vLLM plugin checks the devices once per serving pod (runtime `devices.py`); a mismatch does not
stop vLLM, so a person must hear of it: the sidecar exports the outcome as `datajax_devices_match` (1
or 0, absent until the check ran) and this turns the slices' gauges into one condition. Set only with a
plan bundle (`spec.plan.configMapRef`), as the check only runs in the runtime image with a plan.
"""

from collections.abc import Sequence

from datajax_operator.api.constants import DEVICES_MATCH
from datajax_operator.api.status import ConditionStatus
from datajax_operator.status.conditions import Verdict
from datajax_operator.status.observations import SidecarScrape


def devices_verdict(sidecars: Sequence[SidecarScrape]) -> Verdict:
    """True when every answering slice's check matched; False (Mismatch) as soon as one did not."""
    checks = {s.endpoint: s.figures.devices_match for s in sidecars if s.figures is not None}
    mismatched = [endpoint for endpoint, match in checks.items() if match is False]
    unchecked = [endpoint for endpoint, match in checks.items() if match is None]
    status: ConditionStatus
    if not checks:
        status, reason, message = "Unknown", "NoMetrics", "no sidecar answered"
    elif mismatched:
        status, reason = "False", "Mismatch"
        message = (
            f"JAX's TPU devices differ from the planned slice on {len(mismatched)} of {len(checks)} "
            f"slice(s) ({', '.join(mismatched)}): the vLLM container's log names the difference "
            "(wrong node pool or topology label?); vLLM keeps serving on what it found"
        )
    elif unchecked:
        status, reason = "Unknown", "NotChecked"
        message = (
            f"{len(unchecked)} of {len(checks)} sidecar(s) report no device check yet (vLLM still starting?)"
        )
    else:
        status, reason, message = "True", "Match", f"devices match the plan on {len(checks)} slice(s)"
    return Verdict(DEVICES_MATCH, status, reason, message)
