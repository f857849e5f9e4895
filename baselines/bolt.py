"""BOLT — inverse-transform keyframe sampling (Liu et al., CVPR'25, arXiv 2503.21483).

Normalise the 1 fps pool's relevance to [0, 1], raise it to the power α (sharpening), treat it as a
distribution over frames and take the frames where its CDF first reaches n evenly spaced quantiles
1/n … 1 − 1/n (notes/baselines.md §B). Quantiles that land on an already chosen frame would shrink the
frame budget; we top up with the most relevant unchosen frames, so n frames always reach the model.
Official defaults (repo README): power α = 3 for VideoMME and MLVU (2.5 for LongVideoBench), CLIP ViT-L/14
scorer — not registered in the harness, so the default scorer is CLIP ViT-B/32 (ViLAMP's); n = the VLM's
frame count (32 for LLaVA-OneVision).
Hook: an image–text encoder (harness.methods.encoders) — none on the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from baselines.relevance import KeyframeSelector, minmax


def quantiles(n: int) -> np.ndarray:
    return np.linspace(1 / n, 1 - 1 / n, n) if n > 1 else np.array([0.5])


def inverse_cdf_indices(scores: np.ndarray, n: int, power: float) -> list[int]:
    """Positions BOLT keeps (sorted by time): CDF inversion of minmax(scores)^power at `quantiles(n)`."""
    if len(scores) <= n:
        return list(range(len(scores)))
    weights = minmax(scores) ** power
    if weights.sum() <= 0:  # constant scores: no information, the distribution is uniform
        weights = np.ones_like(weights)
    cdf = np.cumsum(weights / weights.sum())
    picked = set(np.minimum(np.searchsorted(cdf, quantiles(n)), len(scores) - 1).tolist())
    for i in np.argsort(-scores, kind="stable"):
        if len(picked) >= n:
            break
        picked.add(int(i))
    return sorted(int(i) for i in picked)


@dataclass(frozen=True)
class BOLT(KeyframeSelector):
    n: int = 32
    power: float = 3.0
    name: ClassVar[str] = "bolt"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 1 or self.power <= 0:
            raise ValueError(f"bolt: n must be >= 1 and power > 0, got {self.n}, {self.power}")

    def frames_kept(self) -> int:
        return self.n

    def choose(self, scores: np.ndarray) -> list[int]:
        return inverse_cdf_indices(scores, self.n, self.power)
