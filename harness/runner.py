"""Ray runner: a pool of model actors fed from one dynamic queue, longest video first.

Each actor holds one loaded model. A sample goes to whichever actor frees up first, so a long video
never holds back a static shard. Results stream back to the driver, which alone writes the journal.
An actor that dies has its sample re-queued (bounded retries) and is replaced.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.pipeline import Pipeline, failure
from harness.records import Sample, SampleResult
from harness.specs import ModelSpec
from harness.tasks import TaskSpec


@dataclass(frozen=True)
class RunnerConfig:
    workers: int = 2  # model actors (one per GPU on a GPU cluster)
    threads_per_worker: int = 1  # torch threads per actor; fixed so results do not depend on `workers`
    max_retries: int = 2  # re-runs of a sample whose actor died
    device: str = "cpu"
    ray_address: str | None = None


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

    def run(self, sample: Sample) -> SampleResult:
        return self.pipeline.run(sample, self.device)


def longest_first(samples: Sequence[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: -(s.duration_s or 0.0))


def run_samples(
    samples: Sequence[Sample],
    spec: ModelSpec,
    task: TaskSpec,
    prompt: str | None,
    config: RunnerConfig,
    on_result: Callable[[SampleResult], None],
) -> None:
    """Run every sample once; `on_result` is called in the driver as each one finishes."""
    import ray

    from harness.raycluster import start_ray

    if not samples:
        return
    start_ray(num_cpus=max(config.workers * config.threads_per_worker, 1), address=config.ray_address)
    gpus = 1 if config.device.startswith("cuda") else 0
    actor_cls = ray.remote(num_cpus=config.threads_per_worker, num_gpus=gpus, max_restarts=0)(ModelWorker)

    def new_actor():  # noqa: ANN202 - a Ray actor handle
        return actor_cls.remote(spec, task, prompt, config.threads_per_worker, config.device)

    actors = [new_actor() for _ in range(min(config.workers, len(samples)))]
    names = ray.get([a.ready.remote() for a in actors])
    queue = deque((s, 1) for s in longest_first(samples))
    inflight: dict[ray.ObjectRef, tuple[object, Sample, int, str]] = {}

    def submit(actor: object, name: str) -> None:
        if queue:
            sample, attempt = queue.popleft()
            inflight[actor.run.remote(sample)] = (actor, sample, attempt, name)  # type: ignore[attr-defined]

    for actor, name in zip(actors, names, strict=True):
        submit(actor, name)
    while inflight:
        (ref,), _ = ray.wait(list(inflight), num_returns=1)
        actor, sample, attempt, name = inflight.pop(ref)
        try:
            result = dataclasses.replace(ray.get(ref), worker=name[:8], attempts=attempt)
        except ray.exceptions.RayActorError as exc:
            ray.kill(actor)  # type: ignore[arg-type]
            actor = new_actor()
            name = ray.get(actor.ready.remote())
            if attempt <= config.max_retries:
                queue.appendleft((sample, attempt + 1))
                submit(actor, name)
                continue
            result = failure(sample, spec.name, "retries_exhausted", f"worker died {attempt} times: {exc}",
                             attempts=attempt)
        on_result(result)
        submit(actor, name)
