"""Ray runner: CPU decode workers feeding model actors, from one dynamic queue (longest video first, after a few
short ones: harness.run.calls.run_order).

Decoding and frame selection run in decode actors; the decoded frames wait in Ray's object store until a model actor
(one per GPU; `workers` of them on the CPU) is free, so the model never waits on a video it could have had decoded
already; each model actor holds `model_queue` calls (the next one waits on the actor while one runs: no driver round
trip between them). The driver never reads a decode result: it hands both of its refs to the model call, and learns
of a failed decode (or a dead decode actor: only then does it read the small halves of that actor's decodes) from
that call. At most `max_in_flight` samples are decoded or being decoded at once, which keeps memory flat whatever
the dataset size. Selectors that stream their own frames (see `harness.run.pipeline.decodes_in_model`) are decoded
inside the model actor instead.

Only the driver writes the journal. A worker that dies has its sample re-queued (bounded retries) and is
replaced; a sample that exhausts its retries, is killed for memory, or exceeds `sample_timeout_s` in one
stage is recorded with that status and the run goes on.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from harness.core.records import Sample, SampleResult
from harness.core.status import Status, failure_status, first_line
from harness.data.tasks import TaskSpec
from harness.model.specs import ModelSpec
from harness.run.actors import Pool, Stage, open_pool, ready_pool, release
from harness.run.calls import Call, Queued, actor_died, decode_died, run_order
from harness.run.config import RunnerConfig, RunStats
from harness.run.pipeline import decodes_in_model, failure
from harness.run.raycluster import alive_nodes, join_cluster, lost_nodes
from harness.run.workers import DecodeWorker, ModelWorker

SETTLE_S = 10.0  # how long a dead actor's other calls may take to fail (or deliver a reply sent before it died)
RESTARTS = 3  # replacements in a row that may die loading (their node dying too) before the run gives up
# How Ray 2.60 words a call whose argument's producing call failed (it re-raises that failure as the call's own).
ARGUMENTS_FAILED = "input arguments for this task could not be computed"


def decoder_count(config: RunnerConfig, spec: ModelSpec) -> int:
    """CPU decode actors a run of `spec` starts (none when the model actors decode themselves)."""
    return 0 if config.decode_in_model or decodes_in_model(spec) else (config.decode_workers or config.workers)


class Runner:
    """One run of `samples`: each runs once, and `on_result` is called in the driver as each one finishes.

    >>> stats = Runner(samples, spec, task, None, RunnerConfig(workers=2), journal.append).run()

    `tasks`: one task or a suite's (one queue; each sample runs through its own task's pipeline). `model_worker`,
    `decode_worker`: the actors' classes (tests pass ones that die on a chosen sample).
    """

    def __init__(self, samples: Sequence[Sample], spec: ModelSpec, tasks: TaskSpec | Sequence[TaskSpec],
                 prompt: str | None, config: RunnerConfig, on_result: Callable[[SampleResult], None],
                 model_worker: type[ModelWorker] = ModelWorker, decode_worker: type[DecodeWorker] = DecodeWorker
                 ) -> None:
        self.spec, self.prompt, self.config, self.tasks = spec, prompt, config, tuple(
            (tasks,) if isinstance(tasks, TaskSpec) else tasks)
        self.on_result, self.model_worker, self.decode_worker = on_result, model_worker, decode_worker
        self.in_model = config.decode_in_model or decodes_in_model(spec)
        self.stats = RunStats()
        self.pending: deque[Queued] = deque(Queued(s, 1, None) for s in samples)  # ordered once the actors are up
        self.ready: deque[Call] = deque()  # decoded, waiting for a model actor
        self.calls: dict[Any, Call] = {}  # ObjectRef → stage call in flight
        self.seq = itertools.count()
        self.starting: dict[Any, tuple[Pool, int, int]] = {}  # ready() ref → (pool, slot, tries) of a replacement
        self.live = 0  # samples decoding, decoded or in the model stage: at most max_in_flight
        self.max_in_flight = 0  # set with the actors
        self.pools: dict[Stage, Pool] = {}  # started by run()
        self.nodes: set[str] = set()  # alive at the start
        self.suspects: set[str] = set()  # nodes whose actors became unreachable: perhaps lost

    def run(self) -> RunStats:
        import ray

        if not self.pending:
            return self.stats
        t0 = time.perf_counter()
        self._start_actors()
        start = mark = time.perf_counter()
        cpu = time.thread_time()
        self.stats.startup_s = start - t0
        limit = self.config.sample_timeout_s
        tick = None if limit is None else min(1.0, limit / 4)
        self._dispatch()
        while self.pending or self.ready or self.calls:
            self.stats.driver_s += time.perf_counter() - mark
            done, _ = ray.wait([*self.calls, *self.starting], num_returns=1, timeout=tick)
            mark = time.perf_counter()
            for ref in done:
                self._collect(ref)
            self._check_timeouts(mark)
            self._dispatch()
        self.stats.driver_s += time.perf_counter() - mark
        self.stats.driver_cpu_s = time.thread_time() - cpu  # ray.wait blocks without using the CPU
        self.stats.makespan_s = time.perf_counter() - start
        self.stats.lost_nodes = lost_nodes(self.nodes, self.suspects)
        self._drop_unplaced()
        return self.stats

    def _drop_unplaced(self) -> None:
        """Replacements still waiting for a place (their node is gone and no other has room) would hang the next run
        that reuses the pool: such a pool is released whole, to be started afresh on the cluster as it is now."""
        import ray

        for pool in {id(p): p for p, _, _ in self.starting.values()}.values():
            for actor in pool.actors:
                ray.kill(actor)
            pool.resize(0)
        self.starting.clear()

    def _start_actors(self) -> None:
        """Start (or join) the cluster and size both pools to it and to the number of samples."""
        import ray

        config, n = self.config, len(self.pending)
        decoders = decoder_count(config, self.spec)
        resources = join_cluster(config, decoders)
        self.nodes = alive_nodes()
        self.stats.nodes = len(self.nodes)
        model_opts: dict[str, float]
        if config.on_gpus:
            models, model_opts = int(resources["GPU"]), {"num_gpus": 1, "num_cpus": 1}
        else:
            # No more actors than the cluster has CPUs for: an actor that cannot be placed would wait forever.
            models = max(1, min(config.workers, int(resources.get("CPU", 1) // config.threads_per_worker)))
            model_opts = {"num_cpus": config.threads_per_worker}
        models, decoders = min(models, n), min(decoders, n)
        # Decoders take the CPUs the model actors leave; on a full cluster they run as 0-CPU actors (oversubscribed).
        free = resources.get("CPU", 0.0) - models * model_opts["num_cpus"]
        decode_cpus = min(1.0, free / decoders) if decoders and free > 0 else 0.0
        self.max_in_flight = max(config.max_in_flight or (config.model_queue + 1) * models, models)
        self.stats.max_in_flight = self.max_in_flight
        order = run_order([queued.sample for queued in self.pending], self.max_in_flight)
        self.pending = deque(Queued(s, 1, None) for s in order)

        model_cls = ray.remote(max_restarts=0, **model_opts)(self.model_worker)
        decode_cls = ray.remote(max_restarts=0, num_cpus=decode_cpus)(self.decode_worker)
        setup = (self.spec, self.tasks, self.prompt)
        session = ray.get_runtime_context().get_job_id()  # handles die with the cluster they belong to
        # Actors are kept across runs by what their process is (the spec is configured per run: `setup`).
        model_key = (session, self.model_worker, config.threads_per_worker, config.device, repr(model_opts))
        decode_key = (session, self.decode_worker, decode_cpus)
        release("model", model_key, models)
        release("decode", decode_key, decoders)
        opened = {
            "model": open_pool("model", model_key, lambda: model_cls.remote(config.threads_per_worker, config.device),
                               models, setup, config.model_queue),
            "decode": open_pool("decode", decode_key, decode_cls.remote, decoders, setup),
        }
        self.pools = {kind: ready_pool(*pool_refs) for kind, pool_refs in opened.items()}
        self.stats.model_actors, self.stats.decode_actors = models, decoders

    def _dispatch(self) -> None:
        """Decoded samples to idle model actors, then new samples to idle first-stage actors, within the bound."""
        now = time.perf_counter()
        models = self.pools["model"]
        while self.ready and models.idle:
            call = self.ready.popleft()
            call.decoder = (call.slot, call.actor)
            call.stage, call.slot = "model", models.idle.popleft()
            call.actor, call.started = models.actors[call.slot], self._start_time(models.actors[call.slot], now)
            call.seq = next(self.seq)
            self.calls[call.actor.infer.remote(call.frames, call.info)] = call
            # The call holds the frames now: Ray frees them, off this thread, when the call ends.
            call.frames = None
        first: Stage = "model" if self.in_model else "decode"
        pool = self.pools[first]
        while self.pending and pool.idle and self.live < self.max_in_flight:
            sample, attempt, submitted = self.pending.popleft()
            slot = pool.idle.popleft()
            actor, seq = pool.actors[slot], next(self.seq)
            call = Call(sample, attempt, submitted or now, first, slot, actor, self._start_time(actor, now), seq, seq)
            self.live += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.live)
            if self.in_model:
                self.calls[actor.run.remote(sample)] = call
            else:
                info, call.frames = actor.decode.options(num_returns=2).remote(sample)
                self.calls[info] = call

    def _start_time(self, actor: Any, now: float) -> float | None:
        """`now` for a call that starts at once, None for one queued behind a call the actor is running."""
        return None if any(c.actor is actor for c in self.calls.values()) else now

    def _next_starts(self, ended: Call, now: float) -> None:
        """The call queued behind `ended` on its actor starts now (its timeout clock with it)."""
        for call in self.calls.values():
            if call.actor is ended.actor and call.started is None:
                call.started = now
                return

    def _collect(self, ref: Any) -> None:
        """Take in one finished ref: a replacement actor ready, a decoded sample, or a result."""
        import ray

        if ref in self.starting:
            self._placed(ref)
            return
        call = self.calls.pop(ref)
        self._next_starts(call, time.perf_counter())
        pool = self.pools[call.stage]
        if call.stage == "decode":  # its result goes on to a model actor by reference, unread here (P4)
            if pool.actors[call.slot] is call.actor:  # not a call that was sent to an actor since replaced
                pool.idle.append(call.slot)
            call.info = ref
            self.ready.append(call)
            return
        try:
            value = ray.get(ref)
        except ray.exceptions.RayError as exc:
            self._failed(call, pool, exc)
            return
        pool.idle.append(call.slot)
        self._answered(call, value, pool)

    def _answered(self, call: Call, value: SampleResult, pool: Pool) -> None:
        # A decode that failed (missing video, …) comes back through the model actor stamped with its decoder.
        self._finish(call, value, value.worker or pool.names[call.slot], value.worker_node or pool.nodes[call.slot])

    def _failed(self, call: Call, pool: Pool, exc: Any) -> None:
        """A model-stage call that raised (`exc`, a RayError): in it, in the decode that made its arguments, or by its
        actor dying."""
        import ray

        if isinstance(exc, ray.exceptions.RayTaskError):  # raised in the call: the model actor lives on
            pool.idle.append(call.slot)
            if isinstance(exc, ray.exceptions.RayActorError):  # its arguments' decode actor died (Ray names it)
                self._decoder_died(call, exc)
            elif ARGUMENTS_FAILED in str(exc):  # the decode call that made its arguments raised
                self._retry_or_fail(call, exc.cause, "decode")
            else:
                self._retry_or_fail(call, exc, call.stage)
        elif isinstance(exc, ray.exceptions.RayActorError):  # the actor died: replace it, run the sample again
            unreachable = isinstance(exc, ray.exceptions.ActorUnavailableError)  # e.g. its node died
            if unreachable:
                self.suspects.add(pool.nodes[call.slot])
            # The calls that died with it fail in any order; it was running the first one submitted, the others
            # never started: they go back to the queue as they were, with no attempt counted against them.
            died = self._settle(call.actor, pool, 0.0 if unreachable else SETTLE_S)
            running, *queued = sorted([call, *died], key=lambda c: c.seq)
            self._requeue(queued)
            self._replace(running.stage, running.slot, kill=unreachable)  # one that comes back must not hold it
            self._retry_or_fail(running, exc, f"{call.stage} worker died")
        else:  # a lost object: the actor lives on
            pool.idle.append(call.slot)
            self._retry_or_fail(call, exc, call.stage)

    def _settle(self, actor: Any, pool: Pool, wait_s: float) -> list[Call]:
        """The dead `actor`'s other calls that died with it, once Ray has settled each (within `wait_s`; an unreachable
        actor's may never settle): one that answered, or raised, before the death (its reply can reach the driver
        after the death does) is taken as it came, not run again. (Its slot's free places go with the replacement.)"""
        import ray

        refs = self._refs_on(actor)
        ray.wait(refs, num_returns=len(refs), timeout=wait_s)  # an empty list returns at once
        died = []
        for ref in refs:
            call = self.calls.pop(ref)
            try:
                value = ray.get(ref, timeout=0)
            except ray.exceptions.RayError as exc:
                if isinstance(exc, ray.exceptions.GetTimeoutError) or actor_died(exc):
                    died.append(call)
                else:
                    self._failed(call, pool, exc)
                continue
            self._answered(call, value, pool)
        return died

    def _placed(self, ref: Any) -> None:
        """A replacement actor has loaded, or died loading (e.g. started on a node that was dying): then another
        takes its place, up to RESTARTS times in a row. One whose loading raised would raise again: the run stops
        (its journal is whole; `--resume` finishes it)."""
        import ray

        pool, slot, tries = self.starting.pop(ref)
        try:
            pool.placed(slot, ray.get(ref))
        except ray.exceptions.RayError as exc:
            died = isinstance(exc, ray.exceptions.RayActorError) and not exc.actor_init_failed
            if not died or tries >= RESTARTS:
                kind = next(k for k, p in self.pools.items() if p is pool)
                raise RuntimeError(f"a replacement {kind} actor could not start ({tries} tries): "
                                   f"{first_line(exc)}") from None
            ray.kill(pool.actors[slot])  # unreachable is not dead: one that comes back must not hold its resources
            self.starting[pool.replace(slot)] = (pool, slot, tries + 1)
            self.stats.replaced_workers += 1
            return
        pool.open_all([slot])

    def _decoder_died(self, call: Call, exc: Any) -> None:
        """The decode actor that produced `call`'s frames died. The first call to report it replaces it, and one attempt
        is counted, as for a model actor's death, on the call it died on: it holds one call at a time, so that is the
        first in decode order of its calls whose decode result is its death (calls sent to it since, decoded as
        failed at once, can report first). Every other goes back to the queue uncounted."""
        import ray

        slot, actor = call.decoder
        decode = self.pools["decode"]
        if decode.actors[slot] is not actor:  # already replaced, its death counted
            self._requeue([call])
            return
        unreachable = isinstance(exc, ray.exceptions.ActorUnavailableError)  # e.g. its node died
        if unreachable:
            self.suspects.add(decode.nodes[slot])
        self._requeue(self._evict(actor))  # a decode call sent to it since
        self._replace("decode", slot, kill=unreachable)
        mine = [c for c in self.ready if c.actor is actor] + [
            c for c in self.calls.values() if c.decoder is not None and c.decoder[1] is actor]
        died = [c for c in mine if decode_died(c)]
        victim = min([call, *died], key=lambda c: c.decode_seq)
        for other in died:
            if other is not victim and other.stage == "decode":  # still waiting for a model actor
                self._withdraw(other)
                self._requeue([other])
        if victim is not call:
            self._requeue([call])
            self._withdraw(victim)
        self._retry_or_fail(victim, exc.cause or exc, "decode worker died")

    def _withdraw(self, call: Call) -> None:
        """`call` out of the ready queue, or off the model actor it waits on (where it will fail unheard)."""
        if call.stage == "decode":
            self.ready = deque(c for c in self.ready if c is not call)
            return
        del self.calls[next(ref for ref, c in self.calls.items() if c is call)]
        self._next_starts(call, time.perf_counter())
        models = self.pools["model"]
        if models.actors[call.slot] is call.actor:
            models.idle.append(call.slot)

    def _check_timeouts(self, now: float) -> None:
        limit = self.config.sample_timeout_s
        if limit is None:
            return
        for ref, call in list(self.calls.items()):
            if call.started is not None and now - call.started > limit:
                del self.calls[ref]
                self._requeue(self._evict(call.actor))  # killed with it before they started
                self._replace(call.stage, call.slot, kill=True)
                self._finish(call, failure(call.sample, self.spec.name, "timeout",
                                           f"{call.stage} stage exceeded {limit:g} s"), "")

    def _refs_on(self, actor: Any) -> list[Any]:
        return [ref for ref, call in self.calls.items() if call.actor is actor]

    def _evict(self, actor: Any) -> list[Call]:
        """The calls still in flight on `actor`, taken out of the wait (it died or is being killed)."""
        return [self.calls.pop(ref) for ref in self._refs_on(actor)]

    def _requeue(self, calls: list[Call]) -> None:
        """Calls that never started go back unchanged to their first stage (a model call's frames went with it)."""
        for call in sorted(calls, key=lambda c: c.seq, reverse=True):
            self.live -= 1
            self.pending.appendleft(Queued(call.sample, call.attempt, call.submitted))

    def _replace(self, stage: Stage, slot: int, kill: bool = False) -> None:
        """A new actor in `stage`'s `slot`; `kill` the old one first when it may still be running."""
        import ray

        pool = self.pools[stage]
        if kill:
            ray.kill(pool.actors[slot])
        pool.names[slot] = ""  # until the new actor is placed: a late error naming the old one is not its
        self.starting[pool.replace(slot)] = (pool, slot, 1)
        self.stats.replaced_workers += 1

    def _retry_or_fail(self, call: Call, exc: BaseException, where: str) -> None:
        """A dead worker or a lost object says nothing against the sample: it runs again, from decoding (its
        frames may be lost too), up to `max_retries` times; one that ran out of memory would again."""
        status = failure_status(exc)
        if status != "oom" and call.attempt <= self.config.max_retries:
            self.live -= 1
            self.stats.retries += 1
            self.pending.appendleft(Queued(call.sample, call.attempt + 1, call.submitted))
            return
        final: Status = "oom" if status == "oom" else "retries_exhausted"
        self._finish(call, failure(call.sample, self.spec.name, final, f"{where}: {first_line(exc)}"), "")

    def _finish(self, call: Call, result: SampleResult, worker: str, node: str = "") -> None:
        self.live -= 1
        self.stats.count(result)
        timings = {**result.timings_s, "in_flight": time.perf_counter() - call.submitted}
        self.on_result(dataclasses.replace(result, worker=worker[:8], worker_node=node[:8], attempts=call.attempt,
                                           timings_s=timings))
