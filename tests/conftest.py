from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from videos import WrittenVideo, write_video


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


@pytest.fixture
def write_test_video(tmp_path: Path) -> Callable[..., WrittenVideo]:
    """Factory writing index-coded test videos (tests/videos.py) under the test's tmp_path."""

    def write(name: str = "test.mp4", **options) -> WrittenVideo:
        return write_video(tmp_path / name, **options)

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
