"""What a run is asked for (RunnerConfig: actors, retries, timeouts, placement) and what it reports (RunStats: where
the time went, retries, replaced actors, lost nodes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.core.config import ConfigError
from harness.core.records import SampleResult


@dataclass(frozen=True)
class RunnerConfig:
    workers: int = 2  # model actors on the CPU; with GPU placement, one per GPU of the cluster
    threads_per_worker: int = 1  # torch threads per actor; fixed so results do not depend on `workers`
    max_retries: int = 2  # re-runs of a sample whose worker died
    device: str = "cpu"
    ray_address: str | None = None
    decode_workers: int | None = None  # CPU decode actors (default: one per model actor)
    max_in_flight: int | None = None  # samples decoded or decoding at once (default: model_queue + 1 per model actor)
    # Calls held by each model actor at once: with 2, the next sample waits on the actor while one runs, so the
    # hand-over (the driver seeing the result, submitting, the actor fetching the frames) hides behind a sample.
    model_queue: int = 2
    sample_timeout_s: float | None = None  # per stage (decode, model); None: no limit
    decode_in_model: bool = False  # decode inside the model actor even when the selector does not need it
    # "gpu": one model actor per GPU of the cluster (num_gpus=1: Ray gives each its CUDA_VISIBLE_DEVICES); "auto":
    # gpu when `device` is cuda. GPU placement with device cpu schedules as on GPUs but computes on the CPU
    # (multi-node tests on a machine without one).
    placement: str = "auto"

    def __post_init__(self) -> None:
        if self.placement not in ("auto", "cpu", "gpu"):
            raise ConfigError(f"--placement must be auto, cpu or gpu, got {self.placement!r}")
        if self.device.startswith("cuda") and self.placement == "cpu":
            raise ConfigError("--device cuda needs GPU placement: drop --placement cpu")
        if self.model_queue < 1:
            raise ConfigError(f"model_queue must be >= 1, got {self.model_queue}")

    @property
    def on_gpus(self) -> bool:
        return self.placement == "gpu" or (self.placement == "auto" and self.device.startswith("cuda"))


@dataclass
class RunStats:
    """Where the time went, for `make bench` and the run summary."""

    samples: int = 0
    startup_s: float = 0.0  # cluster start + actors loading their model
    makespan_s: float = 0.0  # first sample handed out → last result in
    driver_s: float = 0.0  # driver time outside ray.wait: queueing, bookkeeping, the on_result callback
    driver_cpu_s: float = 0.0  # CPU time of the driver's thread over the run (less than driver_s on busy cores)
    decode_busy_s: float = 0.0  # sum of decode-stage time over samples
    model_busy_s: float = 0.0  # sum of model-stage time over samples
    longest_sample_s: float = 0.0
    retries: int = 0
    replaced_workers: int = 0
    max_in_flight: int = 0  # the bound on samples decoded or decoding at once (also how many open the run)
    peak_in_flight: int = 0  # most samples decoded or decoding at once
    model_actors: int = 0
    decode_actors: int = 0
    nodes: int = 0  # alive when the run started
    lost_nodes: list[str] = field(default_factory=list)  # ids of nodes that died during the run
    statuses: dict[str, int] = field(default_factory=dict)

    def count(self, result: SampleResult) -> None:
        """Add one finished sample."""
        self.samples += 1
        self.statuses[result.status] = self.statuses.get(result.status, 0) + 1
        t = result.timings_s
        decode = t.get("decode_total", t.get("video_decode", 0.0) + t.get("select", 0.0))
        self.decode_busy_s += decode
        self.model_busy_s += t.get("infer_total", max(t.get("total", 0.0) - decode, 0.0))
        self.longest_sample_s = max(self.longest_sample_s, t.get("total", 0.0))
