from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Hermetic and offline: a private cache and results root; no hub, W&B writes locally.

    Set before any test starts so Ray workers, which inherit the environment, see the same values.
    """
    import os
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="harness-tests-"))
    os.environ.setdefault("HARNESS_CACHE", str(base / "cache"))
    os.environ.setdefault("HARNESS_RESULTS", str(base / "results"))
    for key, value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                       "WANDB_MODE": "offline", "RAY_USAGE_STATS_ENABLED": "0"}.items():
        os.environ[key] = value


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the whole session (starting one costs ~8 s)."""
    from harness.run.raycluster import start_ray, stop_ray

    start_ray(num_cpus=2, object_store_mb=256)
    yield
    stop_ray()


@dataclass(frozen=True)
class WrittenVideo:
    """An mp4 written by `write_test_video`: frame i shows its own index as two flat gray halves."""

    path: Path
    num_frames: int
    fps: float
    width: int
    height: int

    @staticmethod
    def levels(index: int) -> tuple[int, int]:
        """(left, right) gray levels of frame `index`: index % 32 and index // 32, unique up to 1024 frames."""
        return 16 + 7 * (index % 32), 16 + 7 * (index // 32 % 32)

    @staticmethod
    def measure(pixels: np.ndarray) -> tuple[float, float]:
        """Mean gray of the inner left and right quarters of a decoded frame (away from the edge between halves)."""
        h, w = pixels.shape[:2]
        inner = pixels[h // 4 : 3 * h // 4].astype(np.float64)
        return inner[:, w // 8 : 3 * w // 8].mean(), inner[:, 5 * w // 8 : 7 * w // 8].mean()


@pytest.fixture
def write_test_video(tmp_path: Path) -> Callable[..., WrittenVideo]:
    """Factory writing index-coded test videos with PyAV (libx264, near-lossless)."""

    def write(
        name: str = "test.mp4",
        num_frames: int = 60,
        fps: float = 10.0,
        size: tuple[int, int] = (64, 48),
        gop: int = 12,
        bframes: bool = False,
        faststart: bool = False,
    ) -> WrittenVideo:
        path = tmp_path / name
        width, height = size
        rate = Fraction(fps).limit_denominator(1001)
        options = {"movflags": "faststart"} if faststart else {}
        with av.open(str(path), "w", options=options) as container:
            codec_options = {"preset": "medium" if bframes else "ultrafast", "crf": "8"}
            stream = container.add_stream("libx264", rate=rate, options=codec_options)
            stream.width, stream.height, stream.pix_fmt, stream.gop_size = width, height, "yuv420p", gop
            for i in range(num_frames):
                left, right = WrittenVideo.levels(i)
                rgb = np.empty((height, width, 3), np.uint8)
                rgb[:, : width // 2], rgb[:, width // 2 :] = left, right
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = i, 1 / rate
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        return WrittenVideo(path, num_frames, float(fps), width, height)

    return write


@pytest.fixture
def word_sample(write_test_video):
    """Factory: a needle-task sample over a freshly written test video, its evidence at 2-3 s (the spec tests'
    one sample through the whole path)."""
    from harness.core.records import Sample

    def make(num_frames: int = 60, fps: float = 10.0) -> Sample:
        video = write_test_video(num_frames=num_frames, fps=fps)
        return Sample(id="s", task="needle", video=str(video.path), question="Which word appeared?",
                      options=("APPLE", "TIGER", "CLOUD", "PIANO"), answer=1, evidence_spans_s=((2.0, 3.0),))

    return make
