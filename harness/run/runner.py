"""Ray runner: CPU decode workers feeding model actors, from one dynamic queue, longest video first.

Decoding and frame selection run in decode actors; the decoded frames wait in Ray's object store until a
model actor (one per GPU; `workers` of them on the CPU) is free, so the model never waits on a video it
could have had decoded already. At most `max_in_flight` samples are decoded or being decoded at once,
which keeps memory flat whatever the dataset size. Selectors that stream their own frames (see
`pipeline.decodes_in_model`) are decoded inside the model actor instead.

Only the driver writes the journal. A worker that dies has its sample re-queued (bounded retries) and is
replaced; a sample that exhausts its retries, is killed for memory, or exceeds `sample_timeout_s` in one
stage is recorded with that status and the run goes on.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.core.measure import PeakMemory, StageTimer
from harness.run.pipeline import Decoded, Pipeline, decodes_in_model, failure
from harness.core.records import Sample, SampleResult
from harness.model.specs import ModelSpec
from harness.data.tasks import TaskSpec


@dataclass(frozen=True)
class RunnerConfig:
    workers: int = 2  # model actors on the CPU; with device cuda, one per GPU of the cluster
    threads_per_worker: int = 1  # torch threads per actor; fixed so results do not depend on `workers`
    max_retries: int = 2  # re-runs of a sample whose worker died
    device: str = "cpu"
    ray_address: str | None = None
    decode_workers: int | None = None  # CPU decode actors (default: one per model actor)
    max_in_flight: int | None = None  # samples decoded or decoding at once (default: 2 per model actor)
    sample_timeout_s: float | None = None  # per stage (decode, model); None: no limit
    decode_in_model: bool = False  # decode inside the model actor even when the selector does not need it
    # Test-only fault injection, off by default: the model actor calls os._exit(1) when it receives sample
    # `crash_sample` on attempt ≤ `crash_attempts` (a worker dying mid-run, as a segfault or OOM kill would).
    crash_sample: str | None = None
    crash_attempts: int = 1


@dataclass
class RunStats:
    """Where the time went, for `make bench` and the run summary."""

    samples: int = 0
    startup_s: float = 0.0  # cluster start + actors loading their model
    makespan_s: float = 0.0  # first sample handed out → last result in
    driver_s: float = 0.0  # driver time outside ray.wait: queueing, bookkeeping, the on_result callback
    decode_busy_s: float = 0.0  # sum of decode-stage time over samples
    model_busy_s: float = 0.0  # sum of model-stage time over samples
    longest_sample_s: float = 0.0
    retries: int = 0
    replaced_workers: int = 0
    peak_in_flight: int = 0  # most samples decoded or decoding at once (bounded by max_in_flight)
    model_actors: int = 0
    decode_actors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DecodeInfo:
    """The small half of a decode result, read by the driver; the frames stay in the object store."""

    seconds: float
    peak_rss_mb: float
    nbytes: int


class DecodeWorker:
    """A Ray actor body: probes, plans, decodes and selects frames on the CPU; never loads the model."""

    def __init__(self, spec: ModelSpec, task: TaskSpec, prompt: str | None) -> None:
        import torch

        torch.set_num_threads(1)
        self.pipeline = Pipeline(spec, task, prompt)

    def ready(self) -> str:
        import ray

        return ray.get_runtime_context().get_actor_id()

    def decode(self, sample: Sample) -> tuple[DecodeInfo | SampleResult, Decoded | None]:
        timer = StageTimer()
        with PeakMemory() as memory, timer("total"):
            decoded = self.pipeline.decode(sample)
        if isinstance(decoded, SampleResult):
            timings = {**decoded.timings_s, "total": timer.seconds["total"]}
            return dataclasses.replace(decoded, timings_s=timings, peak_rss_mb=round(memory.peak_mb, 1)), None
        return DecodeInfo(timer.seconds["total"], memory.peak_mb, decoded.frames.pixels.nbytes), decoded


class ModelWorker:
    """A Ray actor body: loads the model once, then runs samples one at a time."""

    def __init__(self, spec: ModelSpec, task: TaskSpec, prompt: str | None, threads: int, device: str) -> None:
        import torch

        torch.set_num_threads(threads)
        self.device = device
        self.pipeline = Pipeline(spec, task, prompt)

    def ready(self) -> str:
        self.pipeline.backbone  # load weights before the clock starts
        import ray

        return ray.get_runtime_context().get_actor_id()

    @staticmethod
    def _maybe_crash(sample: Sample, attempt: int, crash: tuple[str | None, int]) -> None:
        if sample.id == crash[0] and attempt <= crash[1]:
            os._exit(1)

    def run(self, sample: Sample, attempt: int = 1, crash: tuple[str | None, int] = (None, 0)) -> SampleResult:
        """Both halves here (selectors that stream their frames, or `decode_in_model`)."""
        self._maybe_crash(sample, attempt, crash)
        return self.pipeline.run(sample, self.device)

    def infer(self, sample: Sample, decoded: Decoded, info: DecodeInfo, attempt: int = 1,
              crash: tuple[str | None, int] = (None, 0)) -> SampleResult:
        """The model half on frames a decode worker produced; time and memory cover both halves."""
        self._maybe_crash(sample, attempt, crash)
        timer = StageTimer()
        with PeakMemory(self.device) as memory, timer("infer"):
            result = self.pipeline.infer(sample, decoded)
        timings = {**result.timings_s, "decode_total": info.seconds, "infer_total": timer.seconds["infer"],
                   "total": info.seconds + timer.seconds["infer"]}
        # The sample's peak over the two processes that held it (each figure includes its process's baseline).
        peak = max(memory.peak_mb, info.peak_rss_mb)
        return dataclasses.replace(result, timings_s=timings, peak_rss_mb=round(peak, 1))


def longest_first(samples: Sequence[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: -(s.duration_s or 0.0))


@dataclass
class _Call:
    """A stage call in flight on one worker."""

    stage: str  # "decode" | "model" | "start"
    slot: int
    sample: Sample | None = None
    attempt: int = 1
    started: float = 0.0
    submitted: float = 0.0  # when the sample's first stage started (for its in-flight time)
    payload: Any = None  # ObjectRef of the Decoded frames (model stage)
    info: DecodeInfo | None = None


class _Pool:
    """Actors of one kind, replaceable by slot, kept for the next run in this process with the same key.

    Starting an actor costs seconds (a process importing torch, then loading the model), more than a
    short run; tests, `make bench` and multi-run comparisons reuse them.
    """

    def __init__(self, key: tuple, make: Callable[[], Any]) -> None:
        self.key = key
        self.make = make
        self.actors: list[Any] = []
        self.names: list[str] = []
        self.idle: deque[int] = deque()


_POOLS: dict[str, _Pool] = {}


def _release(kind: str, key: tuple, count: int) -> None:
    """Kill cached actors of `kind` this run will not use, so they hold no CPU or GPU it needs."""
    import ray

    pool = _POOLS.get(kind)
    if pool is None:
        return
    keep = count if pool.key == key else 0
    if pool.key[0] == key[0]:  # key[0]: the Ray session; handles of an earlier cluster are gone anyway
        for actor in pool.actors[keep:]:
            ray.kill(actor)
    del pool.actors[keep:], pool.names[keep:]


def _pool(kind: str, key: tuple, make: Callable[[], Any], count: int) -> _Pool:
    """`count` ready actors of `kind`: the cached ones when the key matches, new ones otherwise."""
    import ray

    pool = _POOLS.get(kind)
    if pool is None or pool.key != key:
        pool = _POOLS[kind] = _Pool(key, make)
    pool.actors += [make() for _ in range(count - len(pool.actors))]
    pool.names = pool.names + [""] * (len(pool.actors) - len(pool.names))
    refs = {slot: pool.actors[slot].ready.remote() for slot in range(count)}
    for slot, ref in refs.items():
        try:
            pool.names[slot] = ray.get(ref)
        except ray.exceptions.RayActorError:  # died since the last run: start another
            pool.actors[slot] = make()
            pool.names[slot] = ray.get(pool.actors[slot].ready.remote())
    pool.idle = deque(range(count))
    return pool


def run_samples(
    samples: Sequence[Sample],
    spec: ModelSpec,
    task: TaskSpec,
    prompt: str | None,
    config: RunnerConfig,
    on_result: Callable[[SampleResult], None],
) -> RunStats:
    """Run every sample once; `on_result` is called in the driver as each one finishes."""
    import ray

    from harness.run.raycluster import start_ray

    stats = RunStats()
    if not samples:
        return stats
    t0 = time.perf_counter()
    in_model = config.decode_in_model or decodes_in_model(spec)
    n_decoders = 0 if in_model else (config.decode_workers or config.workers)
    start_ray(num_cpus=max(config.workers * config.threads_per_worker + n_decoders, 1), address=config.ray_address)
    resources = ray.cluster_resources()
    if config.device.startswith("cuda"):
        n_models, model_opts = int(resources.get("GPU", 0)), {"num_gpus": 1, "num_cpus": 1}
        if n_models < 1:
            raise RuntimeError(f"device {config.device!r} but the Ray cluster has no GPU; use --device cpu")
    else:
        # No more actors than the cluster has CPUs for: an actor that cannot be placed would wait forever.
        n_models = max(1, min(config.workers, int(resources.get("CPU", 1) // config.threads_per_worker)))
        model_opts = {"num_cpus": config.threads_per_worker}
    n_models = min(n_models, len(samples))
    n_decoders = min(n_decoders, len(samples))
    # Decoders take the CPUs the model actors leave; on a full cluster they run as 0-CPU actors (oversubscribed).
    free = resources.get("CPU", 0.0) - n_models * model_opts["num_cpus"]
    decode_cpus = min(1.0, free / n_decoders) if n_decoders and free > 0 else 0.0
    max_in_flight = max(config.max_in_flight or 2 * n_models, n_models)

    model_cls = ray.remote(max_restarts=0, **model_opts)(ModelWorker)
    decode_cls = ray.remote(max_restarts=0, num_cpus=decode_cpus)(DecodeWorker)
    crash = (config.crash_sample, config.crash_attempts)
    session = ray.get_runtime_context().get_job_id()  # handles die with the cluster they belong to
    model_key = (session, spec, task, prompt, config.threads_per_worker, config.device, repr(model_opts))
    decode_key = (session, spec, task, prompt, decode_cpus)
    _release("model", model_key, n_models)
    _release("decode", decode_key, n_decoders)
    pools = {
        "model": _pool("model", model_key, lambda: model_cls.remote(spec, task, prompt, config.threads_per_worker,
                                                                    config.device), n_models),
        "decode": _pool("decode", decode_key, lambda: decode_cls.remote(spec, task, prompt), n_decoders),
    }
    stats.model_actors, stats.decode_actors = n_models, n_decoders

    pending: deque[tuple[Sample, int, float]] = deque((s, 1, 0.0) for s in longest_first(samples))
    ready: deque[_Call] = deque()  # decoded, waiting for a model actor
    calls: dict[Any, _Call] = {}  # ObjectRef → call in flight (stage calls and replacement actors starting)
    decoded_live = 0  # samples decoding, decoded or in the model stage (the in-flight bound)
    start = time.perf_counter()
    stats.startup_s = start - t0
    busy = 0.0  # driver time outside ray.wait

    def finish(call: _Call, result: SampleResult, worker: str) -> None:
        stats.samples += 1
        stats.statuses[result.status] = stats.statuses.get(result.status, 0) + 1
        t = result.timings_s
        decode = t.get("decode_total", t.get("video_decode", 0.0) + t.get("select", 0.0))
        stats.decode_busy_s += decode
        stats.model_busy_s += t.get("infer_total", max(t.get("total", 0.0) - decode, 0.0))
        stats.longest_sample_s = max(stats.longest_sample_s, result.timings_s.get("total", 0.0))
        timings = {**result.timings_s, "in_flight": time.perf_counter() - call.submitted}
        on_result(dataclasses.replace(result, worker=worker[:8], attempts=call.attempt, timings_s=timings))

    def replace(kind: str, slot: int, kill: bool) -> None:
        pool = pools[kind]
        if kill:
            ray.kill(pool.actors[slot])
        pool.actors[slot] = pool.make()
        calls[pool.actors[slot].ready.remote()] = _Call("start", slot, payload=kind)
        stats.replaced_workers += 1

    def retry_or_fail(call: _Call, status: str, error: str) -> None:
        nonlocal decoded_live
        decoded_live -= 1
        assert call.sample is not None
        if status == "retry" and call.attempt <= config.max_retries:
            stats.retries += 1
            pending.appendleft((call.sample, call.attempt + 1, call.submitted))  # re-decoded: frames may be lost
            return
        final = "retries_exhausted" if status == "retry" else status
        finish(call, failure(call.sample, spec.name, final, error), "")

    def dispatch() -> None:
        nonlocal decoded_live
        now = time.perf_counter()
        model = pools["model"]
        while ready and model.idle:
            call = ready.popleft()
            call.slot, call.stage, call.started = model.idle.popleft(), "model", now
            actor = model.actors[call.slot]
            calls[actor.infer.remote(call.sample, call.payload, call.info, call.attempt, crash)] = call
        while pending and decoded_live < max_in_flight:
            idle = pools["model"].idle if in_model else pools["decode"].idle
            if not idle:
                break
            sample, attempt, submitted = pending.popleft()
            slot, decoded_live = idle.popleft(), decoded_live + 1
            stats.peak_in_flight = max(stats.peak_in_flight, decoded_live)
            call = _Call("model" if in_model else "decode", slot, sample, attempt, now, submitted or now)
            if in_model:
                calls[pools["model"].actors[slot].run.remote(sample, attempt, crash)] = call
            else:
                info_ref, call.payload = pools["decode"].actors[slot].decode.options(num_returns=2).remote(sample)
                calls[info_ref] = call

    def handle(ref: Any, call: _Call) -> None:
        nonlocal decoded_live
        if call.stage == "start":  # a replacement actor finished loading
            pool = pools[call.payload]
            pool.names[call.slot] = ray.get(ref)
            pool.idle.append(call.slot)
            return
        pool = pools[call.stage]
        try:
            value = ray.get(ref)
        except ray.exceptions.RayActorError as exc:  # the worker died: replace it, run the sample again
            replace(call.stage, call.slot, kill=False)
            oom = "low on memory" in str(exc) or isinstance(exc, ray.exceptions.OutOfMemoryError)
            retry_or_fail(call, "oom" if oom else "retry", f"{call.stage} worker died: {_first_line(exc)}")
            return
        except ray.exceptions.RayError as exc:  # a lost object or a task error: the worker lives on
            pool.idle.append(call.slot)
            oom = isinstance(exc, ray.exceptions.OutOfMemoryError)
            retry_or_fail(call, "oom" if oom else "retry", f"{call.stage}: {_first_line(exc)}")
            return
        pool.idle.append(call.slot)
        name = pool.names[call.slot]
        if call.stage == "decode" and isinstance(value, DecodeInfo):
            call.info = value
            ready.append(call)
            return
        decoded_live -= 1
        call.payload = None  # drop the frames' reference so the object store frees them
        finish(call, value, name)

    def check_timeouts(now: float) -> None:
        nonlocal decoded_live
        limit = config.sample_timeout_s
        if limit is None:
            return
        for ref, call in list(calls.items()):
            if call.stage in ("decode", "model") and now - call.started > limit:
                del calls[ref]
                replace(call.stage, call.slot, kill=True)
                decoded_live -= 1
                call.payload = None
                finish(call, failure(call.sample, spec.name, "timeout",  # type: ignore[arg-type]
                                     f"{call.stage} stage exceeded {limit:g} s"), "")

    tick = None if config.sample_timeout_s is None else min(1.0, config.sample_timeout_s / 4)
    mark = time.perf_counter()
    dispatch()
    while pending or ready or any(c.stage != "start" for c in calls.values()):
        busy += time.perf_counter() - mark
        done, _ = ray.wait(list(calls), num_returns=1, timeout=tick)
        mark = time.perf_counter()
        for ref in done:
            handle(ref, calls.pop(ref))
        check_timeouts(mark)
        dispatch()
    busy += time.perf_counter() - mark
    stats.makespan_s = time.perf_counter() - start
    stats.driver_s = busy
    return stats


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
