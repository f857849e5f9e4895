"""Top-k keyframe selection: the k candidate frames most similar to the question, in time order.

The plain relevance baseline of the keyframe literature (notes/baselines.md §B; the "TOP" ablation of AKS,
CVPR'25, arXiv 2502.21271). Official setting: a 1 fps pool scored by CLIP-L/14 or BLIP; k = the VLM's frame
count (32 for LLaVA-OneVision in AKS' tables). The harness registers no CLIP-L/14, so the default scorer is
CLIP ViT-B/32, ViLAMP's own selector encoder, which keeps the two comparable.
Hook: an image–text encoder (harness.methods.encoders) — none on the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from baselines.relevance import KeyframeSelector


def top_k(scores: np.ndarray, k: int) -> list[int]:
    """Positions of the k highest scores (ties: earlier first), sorted by time."""
    return sorted(int(i) for i in np.argsort(-scores, kind="stable")[:k])


@dataclass(frozen=True)
class TopK(KeyframeSelector):
    k: int = 32
    name: ClassVar[str] = "topk"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k < 1:
            raise ValueError(f"topk: k must be >= 1, got {self.k}")

    def frames_kept(self) -> int:
        return self.k

    def choose(self, scores: np.ndarray) -> list[int]:
        return top_k(scores, self.k)
