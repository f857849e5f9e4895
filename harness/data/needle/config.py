"""What a needle dataset is made of: `NeedleConfig`, validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("retrieval", "ordering", "counting")


@dataclass(frozen=True)
class NeedleConfig:
    seed: int = 0  # master seed; every question derives its own seed from (seed, question index)
    lengths: tuple[int, ...] = (32, 128, 512)  # video lengths in frames, one length bucket each
    depths: tuple[float, ...] = (0.1, 0.5, 0.9)  # retrieval needle depths (fraction of the video), cycled
    per_cell: int = 4  # questions per (kind, length); 4 balances gold letters in every cell -> 36 questions
    kinds: tuple[str, ...] = KINDS  # question kinds to generate
    fps: float = 1.0  # frames per second of the written videos (long videos at 1 fps, as ViLAMP decodes)
    size: tuple[int, int] = (128, 128)  # (width, height) of the frames; even numbers for yuv420p
    needle_frames: int = 2  # frames each needle event lasts
    gop: int = 32  # fixed keyframe interval, so seeking is cheap and keyframes say nothing about needles

    def __post_init__(self) -> None:
        problems = []
        if not self.lengths or min(self.lengths) < 4 * (self.needle_frames + 2):
            problems.append(f"every length must be >= {4 * (self.needle_frames + 2)} frames (4 counting events)")
        if not self.depths or not all(0.0 <= d <= 1.0 for d in self.depths):
            problems.append("depths must be non-empty and within [0, 1]")
        if self.per_cell < 1:
            problems.append("per_cell must be >= 1")
        if not self.kinds or not set(self.kinds) <= set(KINDS):
            problems.append(f"kinds must be a non-empty subset of {KINDS}")
        if not (math.isfinite(self.fps) and self.fps > 0):
            problems.append("fps must be positive")
        if len(self.size) != 2 or any(s < 32 or s % 2 for s in self.size):
            problems.append("size must be (width, height), both even and >= 32")
        if self.seed < 0 or self.needle_frames < 1 or self.gop < 1:
            problems.append("seed must be >= 0, needle_frames and gop >= 1")
        if problems:
            raise ValueError("invalid NeedleConfig: " + "; ".join(problems))
