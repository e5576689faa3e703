"""DevicesMatch: whether the TPU devices JAX enumerated at start-up match the slice the plan paid for.

The vLLM plugin checks the devices once per serving pod (runtime `devices.py`); a mismatch does not
stop vLLM, so a person must hear of it: the sidecar exports the outcome as `datajax_devices_match` (1
or 0, absent until the check ran) and this turns the slices' gauges into one condition. Set only with a
plan bundle (`spec.plan.configMapRef`), as the check only runs in the runtime image with a plan.
"""

from collections.abc import Sequence

from datajax_operator.api.constants import DEVICES_MATCH
from datajax_operator.status.conditions import Verdict
from datajax_operator.status.observations import SidecarScrape


def devices_verdict(sidecars: Sequence[SidecarScrape]) -> Verdict:
    """True when every answering slice's check matched; False (Mismatch) as soon as one did not."""
    answered = [s for s in sidecars if s.figures is not None]
    if not answered:
        return Verdict(DEVICES_MATCH, "Unknown", "NoMetrics", "no sidecar answered")
    mismatched = [s.endpoint for s in answered if s.figures is not None and s.figures.devices_match is False]
    if mismatched:
        return Verdict(
            DEVICES_MATCH,
            "False",
            "Mismatch",
            f"JAX's TPU devices differ from the planned slice on {len(mismatched)} of {len(answered)} "
            f"slice(s) ({', '.join(mismatched)}): the vLLM container's log names the difference "
            "(wrong node pool or topology label?); vLLM keeps serving on what it found",
        )
    unchecked = [s.endpoint for s in answered if s.figures is not None and s.figures.devices_match is None]
    if unchecked:
        return Verdict(
            DEVICES_MATCH,
            "Unknown",
            "NotChecked",
            f"{len(unchecked)} of {len(answered)} sidecar(s) report no device check yet (vLLM still "
            "starting?)",
        )
    return Verdict(DEVICES_MATCH, "True", "Match", f"devices match the plan on {len(answered)} slice(s)")
