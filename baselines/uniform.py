"""Uniform frame sampling: the baseline every long-video paper reports.

Two modes:
- `n`: N frames spread evenly, lmms-eval's convention `linspace(0, total - 1, N)` cast to int
  (its `read_video` helper; N is clamped to the frames the video has).
- `fps`: one frame every `video_fps / fps` frames, then thinned evenly to `max_frames` when longer —
  what ViLAMP's eval scripts do at 1 fps with a 600-frame cap (scripts/eval/exp_*.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.records import Frames, FrameSelection, Sample, VideoMeta


def linspace_indices(total: int, n: int) -> tuple[int, ...]:
    if total <= 0 or n <= 0:
        return ()
    n = min(n, total)
    return tuple(int(i) for i in np.linspace(0, total - 1, n).astype(int))


def fps_indices(total: int, video_fps: float, fps: float, max_frames: int | None) -> tuple[int, ...]:
    if total <= 0 or video_fps <= 0 or fps <= 0:
        return ()
    step = max(video_fps / fps, 1.0)
    indices = np.unique(np.round(np.arange(0, total, step)).astype(int))
    indices = indices[indices < total]
    if max_frames is not None and len(indices) > max_frames:
        indices = indices[np.linspace(0, len(indices) - 1, max_frames).astype(int)]
    return tuple(int(i) for i in indices)


@dataclass(frozen=True)
class Uniform:
    n: int | None = 16  # frames per video; ignored when `fps` is set
    fps: float | None = None  # sample at this rate instead of a fixed count
    max_frames: int | None = 600  # cap for fps mode (ViLAMP's scripts: 600)
    name: str = "uniform"

    def __post_init__(self) -> None:
        if self.fps is None and (self.n is None or self.n < 1):
            raise ValueError("uniform: set n ≥ 1 or fps > 0")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"uniform: fps must be > 0, got {self.fps}")

    def plan(self, meta: VideoMeta) -> tuple[int, ...]:
        if self.fps is not None:
            return fps_indices(meta.num_frames, meta.fps, self.fps, self.max_frames)
        return linspace_indices(meta.num_frames, self.n or 0)

    def select(self, sample: Sample, meta: VideoMeta, frames: Frames) -> FrameSelection:
        return FrameSelection(method=self.name, indices=tuple(frames.indices))
