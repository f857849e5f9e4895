"""DyCoke's temporal token merging, TTM (Tao et al., CVPR'25, arXiv 2411.15024).

Non-overlapping windows of 4 frames [f0 f1 f2 f3]: f0 is kept whole; f1 and f2 are compared with f0, f3
with f2, token by token at the same spatial position (cosine), and each non-anchor frame keeps only its
⌊(1 − K)·M⌋ least similar tokens — ≈47.5% of the tokens at K = 0.7. Like the official code, similar tokens
are dropped, not averaged. Output keeps time order, and spatial order within a frame.
Official default (README): K = 0.7. DyCoke's second stage (decode-time KV pruning at layer 3) is not part
of this baseline.
Hook: visual tokens only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from harness.core.records import EncodedVideo, VisualSequence
from harness.methods.reduction import ReductionContext

REFERENCE = {1: 0, 2: 0, 3: 2}  # frame in a window of 4 → the frame it is compared with (frame 0 is kept whole)
WINDOW = 4


def keep_count(m: int, prune_ratio: float) -> int:
    """Tokens a non-anchor frame of m keeps: ⌊(1 − K)·m⌋."""
    return math.floor(round((1 - prune_ratio) * m, 6))  # round first: 0.3 * 10 is 2.9999999999999996


def ttm_keep(tokens: torch.Tensor, prune_ratio: float) -> list[torch.Tensor]:
    """Per frame, the token positions TTM keeps (sorted): tokens [T, M, C]."""
    t, m, _ = tokens.shape
    n_keep = keep_count(m, prune_ratio)
    unit = torch.nn.functional.normalize(tokens.float(), dim=-1)
    kept = []
    for frame in range(t):
        offset = frame % WINDOW
        if offset == 0:
            kept.append(torch.arange(m))
            continue
        similarity = (unit[frame] * unit[frame - offset + REFERENCE[offset]]).sum(-1)
        kept.append(torch.sort(torch.argsort(similarity, stable=True)[:n_keep]).values)
    return kept


@dataclass(frozen=True)
class DyCoke:
    prune_ratio: float = 0.7  # K
    name: ClassVar[str] = "dycoke"
    requires: ClassVar[frozenset[str]] = frozenset()
    emits_rows: ClassVar[bool] = True  # it drops tokens; the survivors are encoded rows

    def __post_init__(self) -> None:
        if not 0.0 <= self.prune_ratio < 1.0:
            raise ValueError(f"dycoke: prune_ratio must be in [0, 1), got {self.prune_ratio}")

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        anchors = math.ceil(frames / WINDOW)  # frame 0 of each window is kept whole
        return anchors * per_frame + (frames - anchors) * keep_count(per_frame, self.prune_ratio)

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        per_row = encoded.tokens.shape[1]
        kept = ttm_keep(encoded.tokens, self.prune_ratio)
        return VisualSequence.select(encoded, torch.cat([f * per_row + rows for f, rows in enumerate(kept)]))
