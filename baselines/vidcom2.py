"""VidCom2 — Video Compression Commander: Plug-and-Play Inference Acceleration for Video Large Language Models
(Liu, Wang, Ma, Zhang; EMNLP 2025; arXiv 2505.14454; official code xuyang-liu16/VidCom2).

Two stages on the video's visual tokens as the LLM would read them (after the projector and pooling):
1. Frame Compression Adjustment. Every token is compared with the video's mean token; a frame's uniqueness is the
   negated mean of its tokens' similarities, u_t = −mean_m s_video(t, m). Budgets follow a temperature softmax:
   σ = softmax(u / τ), retention r_t = r · (1 + σ_t − mean σ), so the budgets sum to r·T·M and the frames least
   like the video get the most.
2. Adaptive Token Compression. Within frame t keep the k_t tokens least similar to both the video's and the
   frame's own mean token (lowest s_video + s_frame), in spatial order.
Facts from the official code (token_compressor/vidcom2/vidcom2.py; the same in the first release's
llava/model/vidcom2.py):
- similarity is not the paper's cosine but a multi-scale Gaussian kernel, s(x, c) = Σ_α exp(−‖x − c‖² / 2α),
  α ∈ {1/8, 1/4, 1/2, 1, 2} (`compute_gaussian_scores`, `_multi_scale_gaussian`), on L2-normalised tokens
  restricted to the half of the channels with the lowest variance over the whole video (`select_low_var_channels`,
  ratio 0.5); the means are of the normalised tokens;
- u_t = −mean of s_video (`vidcom2_compression`: `compute_scales(-vid_score.mean(dim=-1), ...)`), τ = 0.01
  (`compute_scales`), token score s_video + s_frame, lowest kept (`select_outlier_indices`, largest=False);
- retention r = 0.25 (README: `R_RATIO`, default 0.25; the paper's headline 25% on LLaVA-OV);
- the features are the pooled projected tokens (LLaVA-OV: after `get_2dPool`, before the newline token; Qwen2.5-VL:
  the merger's output per temporal group of 2 frames) — here `encoded.tokens`, a row being the unit of time.
Deviation (exact budget): the official k_t = max(1, round(min(r_t, 1)·M)) per frame, whose total drifts from r·T·M
with the rounding (16 × 16 tokens at 25% with one stand-out frame: 8 + 15·round(3.75) = 68, not 64) and loses what
the cap at M cuts off. Here the total is exactly clamp(round(r·T·M), T, T·M) (`visual_tokens`), apportioned by
largest remainders of the quotas r_t·M within [1, M] (baselines.apportion): the same k_t as the official code
whenever its rounded total is already exact, otherwise the nearest integers that make it exact. Equal remainders
go to the more unique frame; equal token scores to the earlier token, where the official `topk` leaves ties to the
kernel, so the output is deterministic.
Hook: none (visual tokens only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from baselines.apportion import largest_remainder
from harness.core.records import EncodedVideo, VisualSequence
from harness.methods.reduction import ReductionContext

ALPHAS = (0.125, 0.25, 0.5, 1.0, 2.0)  # official 2**k, k = -3..1


def gaussian_similarity(x: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Multi-scale Gaussian kernel between each row of x [..., C] and center (broadcast): [...]."""
    distance = ((x - center) ** 2).sum(-1)
    return sum(torch.exp(-distance / (2 * alpha)) for alpha in ALPHAS)


def similarities(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s_video, s_frame) [T, M] for tokens [T, M, C]: each token against the video's and its frame's mean token."""
    t, m, c = tokens.shape
    flat = tokens.reshape(t * m, c).float()
    variance = flat.var(dim=0, unbiased=False)
    # the official keeps the low-variance half; a stable order makes tied channels deterministic
    channels = torch.argsort(variance, stable=True)[: max(1, c // 2)]
    unit = torch.nn.functional.normalize(flat[:, channels], dim=-1).reshape(t, m, -1)
    video = gaussian_similarity(unit, unit.mean(dim=(0, 1), keepdim=True))
    frame = gaussian_similarity(unit, unit.mean(dim=1, keepdim=True))
    return video, frame


def frame_retention(uniqueness: torch.Tensor, keep_ratio: float, temperature: float) -> torch.Tensor:
    """r_t = r · (1 + σ_t − mean σ), σ = softmax(u / τ): [T], summing to r·T (before any cap at 1)."""
    sigma = torch.softmax(uniqueness.double() / temperature, dim=0)
    return keep_ratio * (1 + sigma - sigma.mean())


def total_budget(frames: int, per_frame: int, keep_ratio: float) -> int:
    """Tokens kept of frames × per_frame: round(r·T·M), at least one per frame, at most all."""
    n = frames * per_frame
    if n == 0:
        return 0
    return min(n, max(frames, round(keep_ratio * n)))


def frame_budgets(uniqueness: torch.Tensor, per_frame: int, keep_ratio: float, temperature: float) -> list[int]:
    """VidCom2's tokens per frame from the frames' uniqueness [T], summing to `total_budget` exactly; equal
    remainders favour the more unique frame."""
    quotas = (frame_retention(uniqueness, keep_ratio, temperature) * per_frame).tolist()
    return largest_remainder(quotas, total_budget(len(quotas), per_frame, keep_ratio), 1, per_frame,
                             uniqueness.tolist())


def keep_positions(scores: torch.Tensor, budgets: list[int]) -> list[torch.Tensor]:
    """Per frame, the budget's lowest-scoring token positions, sorted: scores [T, M]."""
    return [torch.sort(torch.argsort(scores[t], stable=True)[:k]).values for t, k in enumerate(budgets)]


@dataclass(frozen=True)
class VidCom2:
    keep_ratio: float = 0.25  # official R_RATIO / base_scale
    temperature: float = 0.01  # official compute_scales(temp=0.01)
    name: ClassVar[str] = "vidcom2"
    requires: ClassVar[frozenset[str]] = frozenset()
    emits_rows: ClassVar[bool] = True  # it drops tokens; the survivors are encoded rows

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"vidcom2: keep_ratio must be in (0, 1], got {self.keep_ratio}")
        if not self.temperature > 0.0:
            raise ValueError(f"vidcom2: temperature must be > 0, got {self.temperature}")

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        return total_budget(frames, per_frame, self.keep_ratio)

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        t, m, _ = encoded.tokens.shape
        if t * m == 0:
            return VisualSequence.select(encoded, torch.empty(0, dtype=torch.long))
        video, frame = similarities(encoded.tokens)
        budgets = frame_budgets(-video.mean(dim=1), m, self.keep_ratio, self.temperature)
        kept = keep_positions(video + frame, budgets)
        return VisualSequence.select(encoded, torch.cat([row * m + k for row, k in enumerate(kept)]))
