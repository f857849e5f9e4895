"""The Ray actor bodies: decode workers (CPU: probe, plan, decode, select) and model workers (load the model once,
then run samples); a model worker names its device in every result (the driver knows each actor's node)."""

from __future__ import annotations

import dataclasses
import gc
import os
from dataclasses import dataclass

from harness.core.measure import PeakMemory, StageTimer
from harness.core.records import Sample, SampleResult
from harness.data.tasks import TaskSpec
from harness.model.specs import ModelSpec
from harness.run.pipeline import Decoded, Pipeline, pipelines


@dataclass(frozen=True)
class DecodeInfo:
    """The small half of a decode result; both halves go from the object store to the model actor."""

    sample: Sample  # travels with the frames, so the driver sends each sample once
    seconds: float
    peak_rss_mb: float
    nbytes: int


def actor_place() -> tuple[str, str]:
    """(this actor's id, its node's id): what its pool records once it has loaded."""
    import ray

    context = ray.get_runtime_context()
    return context.get_actor_id(), context.get_node_id()


def device_label(device: str) -> str:
    """This actor's device: a GPU-placed actor names the GPUs Ray gave it."""
    import ray

    gpus = ray.get_runtime_context().get_accelerator_ids().get("GPU") or []
    return f"{device} CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', ','.join(gpus))}" if gpus else device


class DecodeWorker:
    """A Ray actor body: probes, plans, decodes and selects frames on the CPU; never loads the model. It serves run
    after run: `configure` sets the run's spec and tasks (a process start costs seconds, more than a short run)."""

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        self.pipelines: dict[str, Pipeline] = {}

    def configure(self, spec: ModelSpec, tasks: tuple[TaskSpec, ...], prompt: str | None) -> tuple[str, str]:
        self.pipelines = {}  # never the previous run's, should building these raise
        self.pipelines = pipelines(spec, tasks, prompt)
        return actor_place()

    def ready(self) -> tuple[str, str]:
        return actor_place()

    def decode(self, sample: Sample) -> tuple[DecodeInfo | SampleResult, Decoded | None]:
        timer = StageTimer()
        with PeakMemory() as memory, timer("total"):
            decoded = self.pipelines[sample.task].decode(sample)
        if isinstance(decoded, SampleResult):  # recorded as this actor's: it reaches the driver via a model actor
            timings = {**decoded.timings_s, "total": timer.seconds["total"]}
            actor, node = actor_place()
            return dataclasses.replace(decoded, timings_s=timings, peak_rss_mb=round(memory.peak_mb, 1),
                                       worker=actor, worker_node=node), None
        return DecodeInfo(sample, timer.seconds["total"], memory.peak_mb, decoded.frames.pixels.nbytes), decoded


class ModelWorker:
    """A Ray actor body: `configure` loads a run's model once, then samples run one at a time; the next run with
    another spec configures the same process again (its imports warm; the previous model freed first)."""

    def __init__(self, threads: int, device: str):
        import torch

        torch.set_num_threads(threads)
        self.device = device
        self.device_label = device_label(device)
        self.pipelines: dict[str, Pipeline] = {}

    def configure(self, spec: ModelSpec, tasks: tuple[TaskSpec, ...], prompt: str | None) -> tuple[str, str]:
        self.pipelines = {}
        gc.collect()  # the previous model's memory back before the next one loads
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
        self.pipelines = pipelines(spec, tasks, prompt)
        next(iter(self.pipelines.values())).backbone  # load weights (shared by the tasks) before the clock starts
        return actor_place()

    def ready(self) -> tuple[str, str]:
        return actor_place()

    def run(self, sample: Sample) -> SampleResult:
        """Both halves here (selectors that stream their frames, or `decode_in_model`)."""
        return dataclasses.replace(self.pipelines[sample.task].run(sample, self.device), worker_device=self.device_label)

    def infer(self, decoded: Decoded | None, info: DecodeInfo | SampleResult) -> SampleResult:
        """The model half on frames a decode worker produced; time and memory cover both halves. A decode that
        failed (`info` is its result) is passed on as it is: the driver reads decode results only through here."""
        if isinstance(info, SampleResult):
            return info
        sample = info.sample
        timer = StageTimer()
        with PeakMemory(self.device) as memory, timer("infer"):
            result = self.pipelines[sample.task].infer(sample, decoded)
        timings = {**result.timings_s, "decode_total": info.seconds, "infer_total": timer.seconds["infer"],
                   "total": info.seconds + timer.seconds["infer"]}
        # The sample's peak over the two processes that held it (each figure includes its process's baseline).
        peak = max(memory.peak_mb, info.peak_rss_mb)
        return dataclasses.replace(result, timings_s=timings, peak_rss_mb=round(peak, 1), worker_device=self.device_label)
