"""Uniform frame sampling: the baseline every long-video paper reports.

Two modes:
- `n`: N frames spread evenly, lmms-eval's convention `linspace(0, total - 1, N)` cast to int
  (its `read_video` helper; N is clamped to the frames the video has).
- `fps`: the frame nearest every 1 / fps seconds (by presentation time: right on variable-rate files too), then
  thinned evenly to `max_frames` when longer —
  what ViLAMP's eval scripts do at 1 fps with a 600-frame cap (scripts/eval/exp_*.py).
- `budget` (budget-matched): N linspace frames whose visual tokens entering the LLM,
  N · tokens_per_frame + extra_tokens, come closest to a target — a number, or "vilamp": what ViLAMP feeds
  the LLM for this video (1 fps capped at 600 frames, K = 32 keyframes of tokens_per_frame tokens, one
  token per other frame; notes/vilamp.md). Accuracy is then compared at equal visual-token cost. The
  selector does not load the backbone, so `tokens_per_frame` is given in the spec (tested against it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from harness.core.records import Frames, FrameSelection, Sample, VideoMeta


def linspace_indices(total: int, n: int) -> tuple[int, ...]:
    if total <= 0 or n <= 0:
        return ()
    n = min(n, total)
    return tuple(int(i) for i in np.linspace(0, total - 1, n).astype(int))


def fps_indices(meta: VideoMeta, fps: float, max_frames: int | None) -> tuple[int, ...]:
    """The frame nearest each target time k / fps. At a constant rate that is frame round(k · video_fps / fps); at
    a variable one it is found among the stream's real presentation times (`meta.frame_times_s`), so consecutive
    picks are 1 / fps apart in time, not in frame count."""
    total, video_fps = meta.num_frames, meta.fps
    if total <= 0 or video_fps <= 0 or fps <= 0:
        return ()
    if meta.frame_times_s:
        times = np.asarray(meta.frame_times_s, dtype=np.float64)  # >= 2 frames: one frame is constant-rate
        targets = np.arange(0.0, times[-1] + 1e-9, 1.0 / fps)
        after = np.clip(np.searchsorted(times, targets), 1, len(times) - 1)
        nearer_before = targets - times[after - 1] <= times[after] - targets  # a tie goes to the earlier frame
        indices = np.unique(np.where(nearer_before, after - 1, after))
    else:
        step = max(video_fps / fps, 1.0)
        indices = np.unique(np.round(np.arange(0, total, step)).astype(int))
        indices = indices[indices < total]
    if max_frames is not None and len(indices) > max_frames:
        indices = indices[np.linspace(0, len(indices) - 1, max_frames).astype(int)]
    return tuple(int(i) for i in indices)


# ViLAMP's evaluation setting (notes/vilamp.md §1, §5.4): 1 fps, at most 600 frames, K = 32 keyframes.
VILAMP_FPS, VILAMP_MAX_FRAMES, VILAMP_KEYFRAMES = 1.0, 600, 32


def vilamp_budget(meta: VideoMeta, tokens_per_frame: int) -> int:
    """Visual tokens ViLAMP feeds the LLM for this video on a backbone with `tokens_per_frame`."""
    from harness.vilamp import vilamp_visual_tokens

    n = len(fps_indices(meta, VILAMP_FPS, VILAMP_MAX_FRAMES))
    return vilamp_visual_tokens(n, min(VILAMP_KEYFRAMES, n), tokens_per_frame)


def frames_for_budget(target: int, tokens_per_frame: int, extra_tokens: int, total: int) -> int:
    """The N in [1, total] whose N · tokens_per_frame + extra_tokens is nearest `target`."""
    return max(1, min(total, round((target - extra_tokens) / tokens_per_frame)))


@dataclass(frozen=True)
class Uniform:
    n: int | None = 16  # frames per video; ignored when `fps` or `budget` is set
    fps: float | None = None  # sample at this rate instead of a fixed count
    max_frames: int | None = 600  # cap for fps mode (ViLAMP's scripts: 600)
    budget: int | Literal["vilamp"] | None = None  # visual tokens entering the LLM to match
    tokens_per_frame: int | None = None  # the backbone's, for budget mode
    extra_tokens: int = 1  # tokens added once per video (LLaVA-OneVision's trailing image_newline)
    name: ClassVar[str] = "uniform"
    requires: ClassVar[frozenset[str]] = frozenset()
    streaming: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.fps is None and self.budget is None and (self.n is None or self.n < 1):
            raise ValueError("uniform: set n ≥ 1 or fps > 0 (or a budget)")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"uniform: fps must be > 0, got {self.fps}")
        if self.budget is not None:
            if self.budget != "vilamp" and not (isinstance(self.budget, int) and self.budget >= 1):
                raise ValueError(f"uniform: budget must be a token count ≥ 1 or 'vilamp', got {self.budget!r}")
            if not (isinstance(self.tokens_per_frame, int) and self.tokens_per_frame >= 1):
                raise ValueError("uniform: budget mode needs tokens_per_frame ≥ 1 (the backbone's)")

    def preflight(self) -> None:
        """Nothing to check on disk: uniform sampling reads only the video's metadata."""

    def frame_budget(self, per_frame: int | None) -> tuple[int, int | None] | None:
        return None if self.fps is not None or self.budget is not None else (int(self.n or 0), per_frame)

    def target_tokens(self, meta: VideoMeta) -> int:
        """The visual-token target of budget mode for this video."""
        if self.budget == "vilamp":
            return vilamp_budget(meta, self.tokens_per_frame)  # type: ignore[arg-type]
        return int(self.budget)  # type: ignore[arg-type]

    def plan(self, meta: VideoMeta) -> tuple[int, ...]:
        if self.budget is not None:
            per_frame = int(self.tokens_per_frame)  # type: ignore[arg-type]  # checked in __post_init__
            n = frames_for_budget(self.target_tokens(meta), per_frame, self.extra_tokens, meta.num_frames)
            return linspace_indices(meta.num_frames, n)
        if self.fps is not None:
            return fps_indices(meta, self.fps, self.max_frames)
        return linspace_indices(meta.num_frames, self.n or 0)

    def select(self, sample: Sample, meta: VideoMeta, frames: Frames) -> FrameSelection:
        return FrameSelection(method=self.name, indices=tuple(frames.indices))
