"""Per-sample cost measurement: stage wall times and peak memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import torch


class PeakMemory:
    """Peak memory over a block: CUDA peak allocated bytes on a GPU, else the process's peak RSS.

    The CPU figure is sampled by a background thread (ru_maxrss only ever grows over a process's life,
    so it cannot give a per-sample peak).
    """

    def __init__(self, device: str = "cpu", interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._process = psutil.Process()
            self.peak_mb = self._rss_mb()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.startswith("cuda"):
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())

    def _rss_mb(self) -> float:
        return self._process.memory_info().rss / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, self._rss_mb())


class StageTimer:
    """Collects wall time per named stage: `with timer("vision"): ...`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
