"""A traffic model for simulated vLLM servers: requests arrive, are served, and move vLLM's metrics.

What is modelled, per finished request, and why it is enough for the sidecar's figures to behave as
on a real slice:
- arrivals are a Poisson process at the rate the caller sets (the load balancer splits the total
  evenly over the serving replicas, as a Service does);
- prompt and output lengths are log-normal (long right tails, as in chat traffic), clipped to the
  context length; a share of the requests start with a shared system prompt whose whole KV blocks
  are prefix-cache hits (vLLM counts prefix-cache queries and hits in tokens);
- latency grows with load: with utilisation rho = offered tokens/s over the slice's capacity, queue,
  prefill and inter-token times are stretched by 1 / (1 - rho) (an M/M/1-style growth, capped), so
  p95 climbs when traffic lands on fewer slices;
- gauges follow Little's law: requests running = arrival rate x time in the server.

Each replica's state lives in a :class:`~datajax_devtools.demo.exposition.VllmExposition`; time only
advances when someone asks (``advance(now)``), so a scrape always sees every request up to its
instant, and a seeded random generator makes a run repeatable.

:class:`SteadyReplica` is the same simulator without the randomness, for tests that set exact rates
(the e2e tier's vLLM source): both move vLLM's metrics through the one function :func:`served`.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass

from datajax_devtools.demo.exposition import VllmExposition

__all__ = [
    "Gauges",
    "RequestMix",
    "Served",
    "ServedRequest",
    "SimulatedReplica",
    "SliceModel",
    "SteadyReplica",
    "SteadyTraffic",
    "TrafficModel",
    "draw_request",
    "expected_gauges",
    "served",
    "slowdown",
    "utilisation",
]

ENGINE = "0"


@dataclass(frozen=True)
class Served:
    """What some finished requests did, in the quantities vLLM counts (fractions allowed: a steady
    stream is accounted continuously)."""

    requests: float
    prompt_tokens: float
    generation_tokens: float
    cached_tokens: float
    e2e_seconds: float
    ttft_seconds: float
    itl_seconds: float
    itl_count: float
    """Inter-token observations: one per generated token after the first."""
    finished_reason: str = "length"


def served(metrics: VllmExposition, work: Served) -> None:
    """Move the series the sidecar reads (DESIGN §5: token and prefix-cache counters, finished
    requests, the e2e / TTFT / inter-token histograms) as vLLM does for ``work``: the one place where
    traffic becomes vLLM's metrics, for the demo's requests and the tests' steady streams alike."""
    labels = {"engine": ENGINE}
    cached = work.cached_tokens
    metrics.add("vllm:prompt_tokens_total", work.prompt_tokens, **labels)
    metrics.add("vllm:generation_tokens_total", work.generation_tokens, **labels)
    metrics.add("vllm:prefix_cache_queries_total", work.prompt_tokens, **labels)
    metrics.add("vllm:prefix_cache_hits_total", cached, **labels)
    metrics.add("vllm:prompt_tokens_cached_total", cached, **labels)
    metrics.add(
        "vllm:prompt_tokens_by_source_total", work.prompt_tokens - cached, source="local_compute", **labels
    )
    metrics.add("vllm:prompt_tokens_by_source_total", cached, source="local_cache_hit", **labels)
    metrics.add("vllm:prompt_tokens_cached_by_source_total", cached, source="device", **labels)
    metrics.add("vllm:request_success_total", work.requests, finished_reason=work.finished_reason, **labels)
    metrics.observe("vllm:e2e_request_latency_seconds", work.e2e_seconds, count=work.requests, **labels)
    metrics.observe("vllm:time_to_first_token_seconds", work.ttft_seconds, count=work.requests, **labels)
    metrics.observe("vllm:inter_token_latency_seconds", work.itl_seconds, count=work.itl_count, **labels)


@dataclass(frozen=True)
class RequestMix:
    """The shape of one request (token counts), independent of the hardware serving it."""

    prompt_tokens_median: float = 600.0
    prompt_tokens_sigma: float = 0.6
    output_tokens_median: float = 100.0
    output_tokens_sigma: float = 0.45
    shared_prefix_tokens: int = 512
    """A system prompt (e.g. instructions and tools) that some requests start with."""
    prefix_share: float = 0.7
    """Share of requests that start with the shared prefix."""
    user_tokens_median: float = 250.0
    """Length of what follows the shared prefix in those requests."""
    stop_share: float = 0.8
    """Share of requests that end on a stop token; the rest hit their max_tokens."""

    def mean_output_tokens(self) -> float:
        """Expected output tokens of one request."""
        return _lognormal_mean(self.output_tokens_median, self.output_tokens_sigma)

    def mean_tokens(self) -> float:
        """Expected prompt + output tokens of one request."""
        unshared = _lognormal_mean(self.prompt_tokens_median, self.prompt_tokens_sigma)
        shared = self.shared_prefix_tokens + _lognormal_mean(
            self.user_tokens_median, self.prompt_tokens_sigma
        )
        prompt = self.prefix_share * shared + (1 - self.prefix_share) * unshared
        return prompt + self.mean_output_tokens()


def _lognormal_mean(median: float, sigma: float) -> float:
    """The mean of a log-normal draw: median x e^(sigma^2/2)."""
    return median * math.exp(sigma**2 / 2)


@dataclass(frozen=True)
class SliceModel:
    """How one serving slice performs; defaults are of the order of an 8B model on a v6e-8 slice."""

    capacity_tokens_per_second: float = 20_000.0
    """Prompt + output tokens per second the slice sustains at full batch."""
    prefill_tokens_per_second: float = 40_000.0
    inter_token_seconds: float = 0.0055
    """Time per output token of an unloaded slice."""
    queue_seconds: float = 0.02
    """Mean wait for a batch slot at half load."""
    max_model_len: int = 8192
    max_num_seqs: int = 256
    kv_cache_tokens: int = 1_000_000
    block_size: int = 128
    """KV block size: only whole blocks of a shared prefix are cache hits."""
    max_slowdown: float = 10.0


def utilisation(mix: RequestMix, slice_model: SliceModel, requests_per_second: float) -> float:
    """Offered tokens/s over what the slice sustains."""
    return requests_per_second * mix.mean_tokens() / slice_model.capacity_tokens_per_second


def slowdown(slice_model: SliceModel, utilisation: float) -> float:
    """How much longer everything takes than on an idle slice: 1 / (1 - utilisation), capped."""
    cap = slice_model.max_slowdown
    return min(1.0 / max(1.0 - utilisation, 1.0 / cap), cap)


@dataclass(frozen=True)
class ServedRequest:
    """One finished request: its token counts and where its time went (seconds)."""

    prompt: int
    cached: int
    output: int
    stopped: bool
    max_tokens: int
    queue: float
    prefill: float
    itl: float
    decode: float

    @property
    def ttft(self) -> float:
        return self.queue + self.prefill

    @property
    def e2e(self) -> float:
        return self.ttft + self.decode


def _lognormal(rnd: random.Random, median: float, sigma: float) -> int:
    return max(1, round(rnd.lognormvariate(math.log(median), sigma)))


def draw_request(mix: RequestMix, slc: SliceModel, utilisation: float, rnd: random.Random) -> ServedRequest:
    """One request of the mix served by a slice at this utilisation (the random draws in a fixed order,
    so a seeded generator repeats a run)."""
    limit = slc.max_model_len - 1
    if rnd.random() < mix.prefix_share:
        prompt = min(
            mix.shared_prefix_tokens + _lognormal(rnd, mix.user_tokens_median, mix.prompt_tokens_sigma), limit
        )
        cached = (min(mix.shared_prefix_tokens, prompt) // slc.block_size) * slc.block_size
    else:
        prompt = min(_lognormal(rnd, mix.prompt_tokens_median, mix.prompt_tokens_sigma), limit)
        cached = 0
    output = min(
        _lognormal(rnd, mix.output_tokens_median, mix.output_tokens_sigma), slc.max_model_len - prompt
    )
    stopped = rnd.random() < mix.stop_share
    max_tokens = min(max(512, output), slc.max_model_len - prompt) if stopped else output
    slow = slowdown(slc, utilisation)
    queue = rnd.expovariate(1.0 / (slc.queue_seconds * 2 * utilisation * slow)) if utilisation > 0 else 0.0
    prefill = (prompt - cached) / slc.prefill_tokens_per_second * slow
    itl = slc.inter_token_seconds * slow * rnd.lognormvariate(0.0, 0.15)
    return ServedRequest(prompt, cached, output, stopped, max_tokens, queue, prefill, itl, itl * (output - 1))


@dataclass(frozen=True)
class Gauges:
    """vLLM's gauges of one slice at a steady arrival rate."""

    running: float
    waiting: float
    kv_cache_usage: float


def expected_gauges(mix: RequestMix, slc: SliceModel, requests_per_second: float) -> Gauges:
    """Little's law on the expected times at this rate and the load it puts on the slice."""
    load = utilisation(mix, slc, requests_per_second)
    slow = slowdown(slc, load)
    in_server = slc.inter_token_seconds * slow * mix.mean_output_tokens()
    waiting = requests_per_second * slc.queue_seconds * 2 * load * slow
    running = min(requests_per_second * in_server, slc.max_num_seqs)
    return Gauges(running, waiting, min(running * mix.mean_tokens() / slc.kv_cache_tokens, 1.0))


class SimulatedReplica:
    """One vLLM server (engine 0) fed by its share of the traffic."""

    def __init__(
        self,
        name: str,
        served_name: str,
        mix: RequestMix,
        slice_model: SliceModel,
        *,
        now: float,
        seed: int,
    ) -> None:
        self.name = name
        self.mix = mix
        self.slice = slice_model
        self.metrics = VllmExposition(served_name, max_model_len=slice_model.max_model_len, started_at=now)
        self.rate = 0.0
        self._clock = now
        self._random = random.Random(seed)
        self._next_arrival = math.inf

    @property
    def utilisation(self) -> float:
        return utilisation(self.mix, self.slice, self.rate)

    def set_rate(self, requests_per_second: float, now: float) -> None:
        """Change the arrival rate from ``now`` on (everything before is accounted at the old rate)."""
        self.advance(now)
        self.rate = max(requests_per_second, 0.0)
        self._next_arrival = now + self._gap() if self.rate > 0 else math.inf
        self._update_gauges()

    def advance(self, now: float) -> None:
        """Finish every request that arrived up to ``now``."""
        while self._next_arrival <= now:
            self._serve_one()
            self._next_arrival += self._gap()
        self._clock = max(self._clock, now)

    def _gap(self) -> float:
        return self._random.expovariate(self.rate)

    def _serve_one(self) -> None:
        r = draw_request(self.mix, self.slice, self.utilisation, self._random)
        m = self.metrics
        served(
            m,
            Served(
                requests=1,
                prompt_tokens=r.prompt,
                generation_tokens=r.output,
                cached_tokens=r.cached,
                e2e_seconds=r.e2e,
                ttft_seconds=r.ttft,
                itl_seconds=r.itl,
                itl_count=r.output - 1,
                finished_reason="stop" if r.stopped else "length",
            ),
        )
        m.observe("vllm:request_time_per_output_token_seconds", r.itl, engine=ENGINE)
        m.observe("vllm:request_queue_time_seconds", r.queue, engine=ENGINE)
        m.observe("vllm:request_prefill_time_seconds", r.prefill, engine=ENGINE)
        m.observe("vllm:request_decode_time_seconds", r.decode, engine=ENGINE)
        m.observe("vllm:request_inference_time_seconds", r.prefill + r.decode, engine=ENGINE)
        m.observe("vllm:request_prompt_tokens", r.prompt, engine=ENGINE)
        m.observe("vllm:request_generation_tokens", r.output, engine=ENGINE)
        m.observe("vllm:request_max_num_generation_tokens", r.max_tokens, engine=ENGINE)
        m.observe("vllm:request_params_max_tokens", r.max_tokens, engine=ENGINE)
        m.observe("vllm:request_params_n", 1, engine=ENGINE)
        m.observe("vllm:request_prefill_kv_computed_tokens", r.prompt - r.cached, engine=ENGINE)
        m.observe("vllm:request_num_preemptions", 0, engine=ENGINE)

    def _update_gauges(self) -> None:
        """Little's law on the expected times at the current rate and load."""
        g = expected_gauges(self.mix, self.slice, self.rate)
        labels = {"engine": ENGINE}
        self.metrics.set("vllm:num_requests_running", round(g.running), **labels)
        self.metrics.set("vllm:num_requests_waiting", round(g.waiting), **labels)
        self.metrics.set("vllm:num_requests_waiting_by_reason", round(g.waiting), reason="capacity", **labels)
        self.metrics.set("vllm:kv_cache_usage_perc", g.kv_cache_usage, **labels)

    def scrape(self, now: float) -> str:
        """The `/metrics` text at ``now``."""
        self.advance(now)
        return self.metrics.text()


class TrafficModel:
    """The total request rate, split evenly over the replicas currently behind the Service.

    Thread-safe: HTTP handlers scrape replicas while the demo changes the rate and the replica set.
    """

    def __init__(
        self, mix: RequestMix | None = None, slice_model: SliceModel | None = None, seed: int = 8
    ) -> None:
        self.mix = mix or RequestMix()
        self.slice = slice_model or SliceModel()
        self.rate = 0.0
        self._seed = seed
        self._replicas: dict[str, SimulatedReplica] = {}
        self._lock = threading.Lock()

    def new_replica(self, name: str, served_name: str, now: float) -> SimulatedReplica:
        """A replica, not yet receiving traffic (call :meth:`attach` when it is ready)."""
        self._seed += 1
        return SimulatedReplica(name, served_name, self.mix, self.slice, now=now, seed=self._seed)

    def attach(self, replica: SimulatedReplica, now: float) -> None:
        with self._lock:
            self._replicas[replica.name] = replica
            self._rebalance(now)

    def detach(self, name: str, now: float) -> None:
        with self._lock:
            replica = self._replicas.pop(name, None)
            if replica is not None:
                replica.set_rate(0.0, now)
            self._rebalance(now)

    def set_rate(self, requests_per_second: float, now: float) -> None:
        with self._lock:
            self.rate = requests_per_second
            self._rebalance(now)

    def _rebalance(self, now: float) -> None:
        share = self.rate / len(self._replicas) if self._replicas else 0.0
        for replica in self._replicas.values():
            replica.set_rate(share, now)

    def scrape(self, replica: SimulatedReplica, now: float) -> str:
        with self._lock:
            return replica.scrape(now)

    def tokens_per_second(self) -> float:
        """Expected prompt + output tokens per second of the whole model at the current rate."""
        return self.rate * self.mix.mean_tokens()


@dataclass(frozen=True)
class SteadyTraffic:
    """A steady stream at exact per-second rates, with the latency every request (or generated token,
    for ITL) sees: for tests that compare the sidecar's figures with the rates they set."""

    prompt_tokens_per_second: float = 0.0
    generation_tokens_per_second: float = 0.0
    requests_per_second: float = 0.0
    prefix_hit_ratio: float = 0.0
    """Share of the prompt tokens served from the prefix cache."""
    e2e_seconds: float = 0.25
    """End-to-end latency of every request."""
    ttft_seconds: float = 0.02
    """Time to first token of every request."""
    itl_seconds: float = 0.015
    """Latency of every generated token after the first."""


class SteadyReplica:
    """One vLLM server under :class:`SteadyTraffic`: no randomness, every series moves at its rate
    from ``template`` (a real scrape), accounted up to the instant of each scrape. Thread-safe."""

    def __init__(self, template: str, *, now: float, model_name: str = "tiny") -> None:
        self.metrics = VllmExposition(model_name, started_at=now, text=template)
        self._traffic = SteadyTraffic()
        self._clock = now
        self._lock = threading.Lock()

    def set_traffic(self, traffic: SteadyTraffic, now: float) -> None:
        """From ``now`` on, the series move at these rates (what was served so far stays counted)."""
        with self._lock:
            self._advance(now)
            self._traffic = traffic

    def scrape(self, now: float) -> str:
        """The `/metrics` text at ``now``."""
        with self._lock:
            self._advance(now)
            return self.metrics.text()

    def _advance(self, now: float) -> None:
        seconds, t = now - self._clock, self._traffic
        if seconds <= 0:
            return
        self._clock = now
        prompt = t.prompt_tokens_per_second * seconds
        generated = t.generation_tokens_per_second * seconds
        served(
            self.metrics,
            Served(
                requests=t.requests_per_second * seconds,
                prompt_tokens=prompt,
                generation_tokens=generated,
                cached_tokens=prompt * t.prefix_hit_ratio,
                e2e_seconds=t.e2e_seconds,
                ttft_seconds=t.ttft_seconds,
                itl_seconds=t.itl_seconds,
                itl_count=generated,
            ),
        )
