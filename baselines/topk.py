"""Top-k keyframe selection: the k candidate frames most similar to the question, in time order.

The plain relevance baseline of the keyframe literature (notes/baselines.md §B; the "TOP" ablation of AKS,
CVPR'25, arXiv 2502.21271). Official setting: a 1 fps pool scored by CLIP-L/14 or BLIP; k = the VLM's frame
count (32 for LLaVA-OneVision in AKS' tables). The harness registers no CLIP-L/14, so the default scorer is
CLIP ViT-B/32, ViLAMP's own selector encoder, which keeps the two comparable.
Hook: an image–text encoder (harness.encoders) — none on the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from baselines.relevance import POOL_CAP, POOL_FPS, Query, candidate_pool, relevance
from harness.records import Frames, FrameSelection, Sample, VideoMeta


def top_k(scores: np.ndarray, k: int) -> list[int]:
    """Positions of the k highest scores (ties: earlier first), sorted by time."""
    return sorted(int(i) for i in np.argsort(-scores, kind="stable")[:k])


@dataclass(frozen=True)
class TopK:
    k: int = 32
    encoder: str = "clip-vit-b32"
    query: Query = "question"
    fps: float = POOL_FPS
    max_candidates: int | None = POOL_CAP
    name: str = "topk"
    hook: str = "image_text_encoder"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"topk: k must be >= 1, got {self.k}")

    def plan(self, meta: VideoMeta) -> tuple[int, ...]:
        return candidate_pool(meta, self.fps, self.max_candidates)

    def select(self, sample: Sample, meta: VideoMeta, frames: Frames) -> FrameSelection:
        scores = relevance(self.encoder, sample, frames, self.query)
        chosen = top_k(scores, self.k)
        return FrameSelection(self.name, tuple(frames.indices[i] for i in chosen),
                              scores=tuple(float(scores[i]) for i in chosen))
