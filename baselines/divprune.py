"""DivPrune — the max–min diverse subset of visual tokens at a budget (Alvar et al., CVPR 2025, arXiv 2503.02175;
official code vbdi/divprune).

Choosing the k tokens whose smallest pairwise distance is largest (the max–min diversity problem) is NP-hard;
DivPrune solves it greedily on cosine distance d = 1 − cos(x_i, x_j): the first token is the one farthest from
its own nearest neighbour, each next one the token farthest from the set chosen so far (a token's distance to the
set is its distance to the nearest member). Here over all of the video's visual tokens at once (T·M, after the
projector and pooling, as the LLM would read them); the kept tokens keep their order, so a grid backbone places
each at its own row. Official default `threshold_ratio` 0.1: keep round(0.1 · N) tokens.
FlashVID's ADTS (baselines/flashvid.py) is the same greedy with each column's distances scaled by a calibration.
Hook: none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from harness.core.records import EncodedVideo, VisualSequence
from harness.methods.reduction import ReductionContext


def max_min_diverse(features: torch.Tensor, k: int, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Indices (in the order chosen) of `k` rows of `features` [N, C] by DivPrune's greedy max–min rule.

    `weight` [N] scales column j of the distances by weight_j (FlashVID's calibrated ADTS); None is DivPrune.
    """
    unit = torch.nn.functional.normalize(features.float(), dim=-1)
    distance = 1.0 - unit @ unit.T
    if weight is not None:
        distance = distance * weight.float()[None, :]
    n = len(features)
    k = max(1, min(k, n))
    if n == 1:
        return torch.zeros(1, dtype=torch.long)
    nearest = torch.topk(distance, 2, dim=0, largest=False).values[1]  # [0] is each token's distance to itself
    chosen = [int(torch.argmax(nearest))]
    to_set = distance[chosen[0]].clone()  # each token's distance to its nearest chosen token
    for _ in range(1, k):
        # never chosen twice, even among duplicates; −inf, as calibrated distances can be negative
        to_set[chosen] = -math.inf
        chosen.append(int(torch.argmax(to_set)))
        to_set = torch.minimum(to_set, distance[chosen[-1]])
    return torch.tensor(chosen, dtype=torch.long)


@dataclass(frozen=True)
class DivPrune:
    keep_ratio: float = 0.1  # the official threshold_ratio
    name: ClassVar[str] = "divprune"
    requires: ClassVar[frozenset[str]] = frozenset()
    emits_rows: ClassVar[bool] = True  # a subset of encoded rows

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"divprune: keep_ratio must be in (0, 1], got {self.keep_ratio}")

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        n = frames * per_frame
        return min(n, max(1, round(self.keep_ratio * n)))

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        flat = encoded.flat
        if len(flat) == 0:
            return VisualSequence.select(encoded, torch.empty(0, dtype=torch.long))
        keep = max_min_diverse(flat, round(self.keep_ratio * len(flat)))
        return VisualSequence.select(encoded, torch.sort(keep).values)
