"""AKS — Adaptive Keyframe Sampling (Tang et al., CVPR'25, arXiv 2502.21271).

Judge and split: min-max normalise the relevance scores of the 1 fps pool; a bin (the whole video at depth
0) is kept when mean(top-M scores of the bin) − mean(bin) > t1 (and std > t2), otherwise it is split into
halves, down to `depth`; each kept bin at depth d then contributes its top ⌊M / 2^d⌋ frames. The judge uses
the top-M of the bin at every depth, as the official `meanstd` does. Videos with fewer than M candidates
keep them all. Our one guard: depth is capped at log2(M), so a kept bin never contributes 0 frames (with
M < 2^depth the official code can return no frame at all); at the defaults (M = 32, depth 5) it changes
nothing.
Official defaults (repo README / frame_select.py): M = 32 for LLaVA-OneVision and Qwen2-VL (64 for
LLaVA-Video), t1 = 0.8, t2 = −100 (the std test is effectively off), depth 5; BLIP ITM-large scorer, which
the harness does not register, so the default scorer is CLIP ViT-B/32 (ViLAMP's).
Hook: an image–text encoder (harness.methods.encoders) — none on the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from baselines.relevance import KeyframeSelector, minmax
from baselines.topk import top_k


def judge_and_split(scores: np.ndarray, m: int, t1: float, t2: float, depth: int) -> list[tuple[int, int, int]]:
    """The kept bins as (start, stop, depth), in time order, over min-max normalised `scores`."""
    kept: list[tuple[int, int, int]] = []

    def visit(start: int, stop: int, d: int) -> None:
        part = scores[start:stop]
        top = np.sort(part)[::-1][:m]
        if (top.mean() - part.mean() > t1 and part.std() > t2) or d >= depth or stop - start < 2:
            kept.append((start, stop, d))
            return
        middle = start + (stop - start) // 2
        visit(start, middle, d + 1)
        visit(middle, stop, d + 1)

    visit(0, len(scores), 0)
    return kept


def aks_indices(scores: np.ndarray, m: int, t1: float = 0.8, t2: float = -100.0, depth: int = 5) -> list[int]:
    """Positions AKS keeps, sorted by time."""
    if len(scores) <= m:
        return list(range(len(scores)))
    normalised = minmax(scores)
    depth = min(depth, m.bit_length() - 1)  # ⌊log2 M⌋: every kept bin gets ≥ 1 frame
    chosen: list[int] = []
    for start, stop, d in judge_and_split(normalised, m, t1, t2, depth):
        chosen.extend(start + i for i in top_k(normalised[start:stop], m // 2**d))
    return sorted(chosen)


@dataclass(frozen=True)
class AKS(KeyframeSelector):
    max_frames: int = 32  # M
    t1: float = 0.8
    t2: float = -100.0
    depth: int = 5
    name: ClassVar[str] = "aks"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_frames < 1 or self.depth < 0:
            raise ValueError(f"aks: max_frames must be >= 1 and depth >= 0, got {self.max_frames}, {self.depth}")

    def frame_budget(self, per_frame: int | None) -> tuple[int, int | None] | None:
        # the kept bins tile the pool and a bin at depth d gives M / 2^d: M in all when M is a power of two (depth is
        # capped at log2 M); otherwise the floors lose a data-dependent few
        return (self.max_frames, per_frame) if self.max_frames & (self.max_frames - 1) == 0 else None

    def choose(self, scores: np.ndarray) -> list[int]:
        return aks_indices(scores, self.max_frames, self.t1, self.t2, self.depth)
