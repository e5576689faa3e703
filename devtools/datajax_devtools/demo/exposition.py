"""vLLM's `/metrics` text, built from a real vLLM 0.32.0 scrape taken as a template.

Why a template instead of writing the exposition by hand: the sidecar must parse exactly what vLLM
emits (HELP/TYPE lines, `_created` samples, the `engine` and `model_name` labels, label order, the
bucket bounds vLLM chose). Starting from a real scrape of a freshly started server (every counter at
zero) and only changing sample values keeps all of that true by construction. The template is
`vllm-0.32.0-scrape.prom` (scrape-0 of the shared vLLM fixtures, a CPU build serving a tiny model
with `--max-model-len 512`).

Two things differ per simulated server and are rewritten: the `model_name` label (the served name)
and the bounds of the token-count histograms, which vLLM derives from `--max-model-len` as a 1-2-5
series (1, 2, 5, 10, 20, 50, ... up to the context length); every other bound is vLLM's fixed default
and is kept as the template has it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import cast

from prometheus_client.utils import floatToGoString

from datajax_runtime.exposition import parse, parse_labels

_format = cast(Callable[[float], str], floatToGoString)  # how prometheus_client (vLLM's) prints values

__all__ = ["TEMPLATE_MAX_MODEL_LEN", "VllmExposition", "one_two_five", "template_text"]

TEMPLATE_MAX_MODEL_LEN = 512
"""`--max-model-len` of the server the template was scraped from (its token histograms end at 500)."""

Labels = tuple[tuple[str, str], ...]


def template_text() -> str:
    """The real vLLM 0.32.0 scrape shipped with the package."""
    return resources.files(__package__).joinpath("vllm-0.32.0-scrape.prom").read_text(encoding="utf-8")


def one_two_five(limit: int) -> list[float]:
    """vLLM's bucket bounds for token counts: 1, 2, 5, 10, 20, 50, ... while not above ``limit``."""
    bounds: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > limit:
                return bounds
            bounds.append(float(value))
        exponent += 1


@dataclass
class _Sample:
    name: str
    labels: Labels
    value: float

    def label(self, key: str) -> str | None:
        return next((v for k, v in self.labels if k == key), None)

    def render(self) -> str:
        if not self.labels:
            return f"{self.name} {_format(self.value)}"
        body = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.name}{{{body}}} {_format(self.value)}"


class VllmExposition:
    """The sample values of one vLLM server, rendered in the template's exact layout.

    ``add``/``set`` change counters and gauges, ``observe`` records histogram observations (buckets,
    ``_count`` and ``_sum`` together); samples nobody touches keep the template's values.
    """

    def __init__(
        self,
        model_name: str,
        *,
        max_model_len: int = TEMPLATE_MAX_MODEL_LEN,
        started_at: float,
        text: str | None = None,
    ) -> None:
        self._lines: list[str | _Sample] = []
        self._by_name: dict[str, list[_Sample]] = {}
        self._matches: dict[tuple[str, Labels], list[_Sample]] = {}
        self._bucket_bounds: dict[tuple[str, Labels], list[tuple[_Sample, float]]] = {}
        token_bounds = one_two_five(TEMPLATE_MAX_MODEL_LEN)
        pending: list[_Sample] = []  # the bucket lines of the histogram being read
        source = text if text is not None else template_text()
        # the sidecar's own parser reads the samples, in line order; the other lines are kept as text
        parsed = parse(source)
        samples = iter(zip(parsed.names, parsed.labels, parsed.values, strict=True))
        for line in source.splitlines():
            if not line.strip() or line.startswith("#"):
                self._flush(pending, token_bounds, max_model_len)
                self._lines.append(line)
                continue
            name, raw_labels, value = next(samples)
            labels = tuple((k, model_name if k == "model_name" else v) for k, v in parse_labels(raw_labels))
            if name.endswith("_created") or name == "process_start_time_seconds":
                value = started_at
            sample = _Sample(name, labels, value)
            if sample.name.endswith("_bucket"):
                if pending and pending[-1].name != sample.name:
                    self._flush(pending, token_bounds, max_model_len)
                pending.append(sample)
                continue
            self._flush(pending, token_bounds, max_model_len)
            self._keep(sample)
        self._flush(pending, token_bounds, max_model_len)

    def _keep(self, sample: _Sample) -> None:
        self._lines.append(sample)
        self._by_name.setdefault(sample.name, []).append(sample)

    def _flush(self, buckets: list[_Sample], token_bounds: list[float], max_model_len: int) -> None:
        """Emit one histogram's bucket lines; a token-count histogram gets the bounds its context
        length implies."""
        if not buckets:
            return
        read = list(buckets)
        buckets.clear()
        finite = [float(b.label("le") or "nan") for b in read if b.label("le") != "+Inf"]
        if finite == token_bounds and max_model_len != TEMPLATE_MAX_MODEL_LEN:
            first = read[0]
            rebuilt = [*(str(b) for b in one_two_five(max_model_len)), "+Inf"]
            read = [
                _Sample(first.name, tuple((k, le if k == "le" else v) for k, v in first.labels), 0.0)
                for le in rebuilt
            ]
        for bucket in read:
            self._keep(bucket)

    def _matching(self, name: str, labels: dict[str, str]) -> list[_Sample]:
        key = (name, tuple(sorted(labels.items())))
        found = self._matches.get(key)
        if found is None:
            found = [
                s for s in self._by_name.get(name, []) if all(s.label(k) == v for k, v in labels.items())
            ]
            if not found:
                raise KeyError(f"the template has no sample {name}{labels}")
            self._matches[key] = found
        return found

    def add(self, name: str, amount: float, **labels: str) -> None:
        """Increase a counter (every series of ``name`` matching ``labels``)."""
        for sample in self._matching(name, labels):
            sample.value += amount

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge."""
        for sample in self._matching(name, labels):
            sample.value = value

    def observe(self, histogram: str, value: float, count: float = 1, **labels: str) -> None:
        """Record ``count`` observations of ``value`` in a histogram, as prometheus_client would."""
        if count <= 0:
            return
        for bucket, bound in self._bounds(histogram, labels):
            if value <= bound:
                bucket.value += count
        for total in self._matching(f"{histogram}_count", labels):
            total.value += count
        for summed in self._matching(f"{histogram}_sum", labels):
            summed.value += value * count

    def _bounds(self, histogram: str, labels: dict[str, str]) -> list[tuple[_Sample, float]]:
        key = (histogram, tuple(sorted(labels.items())))
        found = self._bucket_bounds.get(key)
        if found is None:
            found = [
                (b, float(b.label("le") or "nan")) for b in self._matching(f"{histogram}_bucket", labels)
            ]
            self._bucket_bounds[key] = found
        return found

    def value(self, name: str, **labels: str) -> float:
        """The sum of the matching samples (tests and the demo's summary read figures back)."""
        return sum(s.value for s in self._matching(name, labels))

    def text(self) -> str:
        """The exposition, line for line in the template's order."""
        return "\n".join(line if isinstance(line, str) else line.render() for line in self._lines) + "\n"
