"""VisionZip — dominant + contextual visual tokens (Yang et al., CVPR'25, arXiv 2412.04467).

Per frame: the k_d tokens that receive the most vision-encoder attention are kept (dominant); the rest are
folded into k_c contextual tokens — targets at evenly spaced positions among them, every other token joins
its most key-similar target (cosine of head-averaged attention keys), and each contextual token is the
target plus the mean of the tokens that joined it. SigLIP has no CLS token, so "attention" is the mean
attention each token receives, as the LLaVA-OneVision re-implementations do (notes/baselines.md §A.2);
the backbone pools it onto the LLM token grid, and the tokens merged are the projected ones.
Official default (LLaVA-1.5): 54 dominant + 10 contextual of 576 tokens = retention 64/576 with a 10/64
contextual share; k = round(retention · M) per frame.
Hook: "vision_attention" on the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from harness.core.records import EncodedVideo, VisualSequence
from harness.methods.reduction import ReductionContext


def split_budget(m: int, retention: float, contextual_share: float) -> tuple[int, int]:
    """(dominant, contextual) tokens per frame of m."""
    k = min(m, max(1, round(retention * m)))
    contextual = min(round(k * contextual_share), k - 1)
    return k - contextual, contextual


def zip_frame(tokens: torch.Tensor, received: torch.Tensor, keys: torch.Tensor, dominant: int, contextual: int):
    """One frame: tokens [M, C], received [M], keys [M, d] → (dominant positions, output tokens [k, C])."""
    top = torch.sort(torch.topk(received, dominant).indices).values
    rest = torch.ones(len(tokens), dtype=torch.bool)
    rest[top] = False
    rest = torch.nonzero(rest)[:, 0]
    out = [tokens[top]]
    if contextual > 0 and len(rest) > 0:
        step = max(1, len(rest) // contextual)
        is_target = torch.zeros(len(rest), dtype=torch.bool)
        is_target[torch.arange(0, len(rest), step)[:contextual]] = True
        targets, others = rest[is_target], rest[~is_target]
        metric = torch.nn.functional.normalize(keys.float(), dim=-1)
        merged = tokens[targets].float()
        if len(others) > 0:
            assign = (metric[others] @ metric[targets].T).argmax(dim=-1)
            sums = torch.zeros_like(merged).index_add(0, assign, tokens[others].float())
            counts = torch.bincount(assign, minlength=len(targets)).clamp(min=1)
            merged = merged + sums / counts[:, None]
        out.append(merged.to(tokens.dtype))
    return top, torch.cat(out)


@dataclass(frozen=True)
class VisionZip:
    retention: float = 64 / 576
    contextual_share: float = 10 / 64
    name: ClassVar[str] = "visionzip"
    requires: ClassVar[frozenset[str]] = frozenset({"vision_attention"})
    emits_rows: ClassVar[bool] = False  # a contextual token is a merge: it stands for no one encoded row

    def __post_init__(self) -> None:
        if not 0.0 < self.retention <= 1.0 or not 0.0 <= self.contextual_share < 1.0:
            raise ValueError(f"visionzip: retention must be in (0, 1] and contextual_share in [0, 1), "
                             f"got {self.retention}, {self.contextual_share}")

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        return frames * sum(split_budget(per_frame, self.retention, self.contextual_share))

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        tokens = encoded.tokens
        received, keys = ctx.backbone.vision_attention(ctx.frames)
        dominant, contextual = split_budget(tokens.shape[1], self.retention, self.contextual_share)
        return VisualSequence(torch.cat([zip_frame(tokens[t], received[t].to(tokens.device), keys[t].to(tokens.device),
                                                   dominant, contextual)[1] for t in range(tokens.shape[0])]))
