"""ToMe — Token Merging by bipartite soft matching (Bolya et al., ICLR'23, arXiv 2210.09461).

As a model-agnostic LLM-input baseline (notes/baselines.md §A.2): on the projected video tokens, split the
tokens alternately into A (even) and B (odd), match every A token to its most cosine-similar B token, merge
the r best-matched A tokens into their partners as a size-weighted mean, and repeat until the budget is met.
Official rules kept: at most 50% of the tokens merge per step, sizes accumulate, and the similarity metric
is the tokens' own features here (inside a ViT it would be the attention keys). Survivors keep their time
order (a merged token sits at its B partner's position).
Defaults: keep_ratio 0.25, the 25% budget row of the ToMe-family video comparisons (FlashVID / EarlyTom
tables, notes §A.3); ToMe itself fixes r per ViT block rather than a video budget.
Hook: visual tokens only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from harness.core.records import EncodedVideo, VisualSequence
from harness.methods.reduction import ReductionContext


def bipartite_merge(x: torch.Tensor, size: torch.Tensor, pos: torch.Tensor, r: int):
    """One ToMe step on tokens x [N, C] with sizes [N] and positions [N]: merge r A tokens into B.

    Returns (x, size, pos) with N − r tokens ordered by position.
    """
    a, b = torch.arange(0, len(x), 2), torch.arange(1, len(x), 2)
    r = min(r, len(a), len(b))
    if r <= 0:
        return x, size, pos
    metric = torch.nn.functional.normalize(x.float(), dim=-1)
    best, partner = (metric[a] @ metric[b].T).max(dim=-1)
    order = torch.argsort(best, descending=True, stable=True)
    merged, unmerged = order[:r], order[r:]
    weight = (x.float() * size[:, None])
    total = weight[b].index_add(0, partner[merged], weight[a[merged]])
    mass = size[b].index_add(0, partner[merged], size[a[merged]])
    keep_a = a[unmerged]
    x_out = torch.cat([x[keep_a].float(), total / mass[:, None]]).to(x.dtype)
    size_out = torch.cat([size[keep_a], mass])
    pos_out = torch.cat([pos[keep_a], pos[b]])
    order = torch.argsort(pos_out)
    return x_out[order], size_out[order], pos_out[order]


def merge_to(x: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat bipartite merging on x [N, C] until `target` tokens remain. Returns (tokens, sizes)."""
    size = torch.ones(len(x), dtype=torch.float32)
    pos = torch.arange(len(x))
    while len(x) > target:
        x, size, pos = bipartite_merge(x, size, pos, min(len(x) - target, len(x) // 2))
    return x, size


@dataclass(frozen=True)
class ToMe:
    keep_ratio: float = 0.25
    name: ClassVar[str] = "tome"
    requires: ClassVar[frozenset[str]] = frozenset()
    emits_rows: ClassVar[bool] = False  # a merged token is a weighted mean: it stands for no one encoded row

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"tome: keep_ratio must be in (0, 1], got {self.keep_ratio}")

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        n = frames * per_frame
        return min(n, max(1, math.ceil(self.keep_ratio * n)))

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        flat = encoded.flat
        return VisualSequence(merge_to(flat, max(1, math.ceil(self.keep_ratio * len(flat))))[0])
