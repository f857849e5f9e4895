"""FastVID — Dynamic Density Pruning for Fast Video Large Language Models (Shen et al., NeurIPS 2025,
arXiv 2503.11187; official code LunarShen/FastVID).

DySeg cuts the frame sequence into segments where adjacent frames' global features are least alike: the c − 1
least similar adjacent pairs (so at least c segments) plus every pair whose cosine is below τ. STPrune then keeps
R = ⌊retention · M⌋ tokens per frame: S = R − ⌊d · R⌋ salient tokens (ATS: the frame's most attended tokens,
kept as they are) and ⌊d · R⌋ contextual ones per frame. The contextual budget of a segment of L frames is
pooled and given to its anchor frames — every p-th frame counting back from the segment's last — which pick their
anchors among their non-salient tokens by a DPC-kNN density-peak score: density ρ_i = exp(−mean of d² to its k nearest
tokens, itself included), with d = ‖x_i − x_j‖ / √C; δ_i = distance to the nearest token of higher density (the
largest distance of the frame for the densest token); score ρ_i · δ_i. DTM merges every non-salient token of the
segment into the anchor of each anchor frame it is most cosine-similar to: an anchor a with n tokens assigned
(itself included) becomes w·a + (1 − w)·mean(assigned), w = max(1/(n + 1), β). Output in row order; a merged
token sits at its anchor's row, so grid backbones (Qwen2.5-VL) place it there.

Official defaults (fastvid_llavaonevision/scripts/eval.sh and lmms_eval/models/llava_onevision.py __init__, the
LLaVA-OneVision setting): retention 0.10, c = 8, τ = 0.9, d = 0.4, p = 4, β = 0.6; k = 4 nearest neighbours and
the formulas above from LLaVA-NeXT/llava/model/language_model/modeling_qwen2.py, Qwen2Model.forward ("FastVID"
block). The features pruned are the projected, pooled tokens the LLM reads (196 per frame there, 16 on `tiny`).

Deviations:
- Global frame feature for DySeg: the mean of the row's tokens, as the official Qwen2.5-VL port does
  (fastvid_qwen25vl/.../qwenvlutils/modeling_qwen2_5_vl.py); the LLaVA-OV code takes SigLIP's attention-pooling
  (MAP) head output, which no backbone hook exposes.
- ATS score: the mean attention each token receives at the vision feature layer (`vision_attention` hook, pooled
  onto the token grid), in place of the MAP probe's attention (LLaVA-OV, llava_arch.get_attn_2dPool) or the mean
  query's attention in the last ViT block (Qwen2.5-VL port).
- Exact budget: a segment's contextual budget ⌊d·R⌋·L is split among its anchor frames with the remainder going to
  the latest ones, as the Qwen2.5-VL port splits it; the LLaVA-OV code floors the share per anchor frame and so
  loses up to ⌈L/p⌉ − 1 tokens a segment, a data-dependent count. A share above an anchor frame's non-salient
  tokens (only at high retention) spills to the segment's other frames, latest first. So every video emits
  exactly frames · R tokens, R = max(1, ⌊retention · M⌋).
- Ties are broken by position (earlier token first) instead of the official 1e-6 random noise on ρ: reproducible.
- Fewer than c frames: every gap is a cut (the official topk would fail). p = 1 merges across the segment like any
  p (the LLaVA-OV code falls back to per-frame merging there).
- Positions: the LLaVA-OV code prunes inside Qwen2Model.forward and each kept token keeps its original position
  id; here tokens are reduced before the LLM, so on LLaVA-OV they are placed sequentially (positions compacted),
  while on Qwen2.5-VL each keeps its row's M-RoPE position.
Hook: "vision_attention" on the backbone (ATS); DySeg and the density pruning use the encoded tokens.
FlashVID (baselines/flashvid.py) reuses `dyseg` (its rule is the same: the c − 1 least similar gaps ∪ the gaps
below τ) and the DPC-kNN score (`dpc_distances`, `density_peak_scores`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from harness.core.records import EncodedVideo, VisualSequence
from harness.methods.reduction import ReductionContext


def dyseg(features: torch.Tensor, min_segments: int, tau: float) -> list[int]:
    """Segment lengths (in order, summing to T) for per-row global features [T, C]."""
    t = len(features)
    if t <= 1:
        return [t] if t else []
    unit = torch.nn.functional.normalize(features.float(), dim=-1)
    similarity = (unit[:-1] * unit[1:]).sum(-1)  # gap i lies between rows i and i + 1
    least = torch.argsort(similarity, stable=True)[: min(min_segments - 1, t - 1)]
    cuts = sorted(set(least.tolist()) | set(torch.nonzero(similarity < tau)[:, 0].tolist()))
    bounds = [-1, *cuts, t - 1]
    return [b - a for a, b in itertools.pairwise(bounds)]


def dpc_distances(x: torch.Tensor) -> torch.Tensor:
    """DPC-kNN's pairwise distances of the rows of x [n, C]: ‖x_i − x_j‖ / √C, [n, n] float."""
    x = x.float()
    return torch.cdist(x, x) / math.sqrt(x.shape[1])


def density_peak_scores(dist: torch.Tensor, knn: int) -> torch.Tensor:
    """DPC-kNN score ρ·δ of each row given their `dpc_distances` [n, n] (see the module docstring)."""
    n = len(dist)
    nearest = torch.topk(dist, min(knn, n), dim=-1, largest=False).values  # includes the token itself (0)
    density = torch.exp(-(nearest**2).mean(-1))
    index = torch.arange(n, device=dist.device)
    # j is "denser" than i when ρ_j > ρ_i, equal densities going to the earlier token (replaces official noise)
    rho_i, rho_j = density[:, None], density[None, :]
    denser = (rho_j > rho_i) | ((rho_j == rho_i) & (index[None] < index[:, None]))
    delta = torch.where(denser, dist, torch.full_like(dist, float("inf"))).min(-1).values
    delta = torch.where(torch.isinf(delta), dist.max(), delta)
    return density * delta


def anchor_quotas(length: int, per_frame: int, interval: int, capacity: int) -> list[int]:
    """Anchors each frame of a segment contributes: per_frame·length in all, on every `interval`-th frame counted
    back from the last; at most `capacity` (its non-salient tokens) per frame, the excess spilling over."""
    anchor_frames = list(range(length - 1, -1, -interval))
    base, extra = divmod(per_frame * length, len(anchor_frames))
    quota = [0] * length
    for i, j in enumerate(anchor_frames):
        quota[j] = base + (i < extra)
    overflow = sum(max(0, q - capacity) for q in quota)
    quota = [min(q, capacity) for q in quota]
    for j in anchor_frames + [j for j in range(length - 1, -1, -1) if j not in anchor_frames]:
        add = min(capacity - quota[j], overflow)
        quota[j] += add
        overflow -= add
    return quota


def merge_into(anchors: torch.Tensor, pool: torch.Tensor, beta: float) -> torch.Tensor:
    """DTM: each row of pool [m, C] joins its most cosine-similar anchor [a, C]; an anchor with n members becomes
    w·anchor + (1 − w)·mean(members), w = max(1/(n + 1), β) (w = 1 with no member)."""
    anchors, pool = anchors.float(), pool.float()
    unit_a = torch.nn.functional.normalize(anchors, dim=-1)
    unit_p = torch.nn.functional.normalize(pool, dim=-1)
    assign = (unit_p @ unit_a.T).argmax(-1)  # first maximum on ties
    counts = torch.bincount(assign, minlength=len(anchors)).to(anchors.dtype)
    mean = torch.zeros_like(anchors).index_add(0, assign, pool) / counts.clamp(min=1)[:, None]
    weight = (1.0 / (counts + 1)).clamp(min=beta)[:, None]
    return weight * anchors + (1 - weight) * mean


def stprune(tokens: torch.Tensor, attention: torch.Tensor, sizes: list[int], salient: int, context: int,
            interval: int, beta: float, knn: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat rows [L] sorted, tokens [L, C] float) kept from tokens [T, M, C] given ATS attention [T, M]."""
    t, m, c = tokens.shape
    x = tokens.float()
    order = torch.argsort(attention.float(), dim=1, descending=True, stable=True)
    top, rest = order[:, :salient], torch.sort(order[:, salient:], dim=1).values
    frame_base = (torch.arange(t) * m)[:, None]
    rows, out = [(top + frame_base).flatten()], [x[torch.arange(t)[:, None], top].reshape(-1, c)]
    start = 0
    for length in sizes:
        pool = torch.cat([x[f, rest[f]] for f in range(start, start + length)])
        for j, quota in enumerate(anchor_quotas(length, context, interval, m - salient)):
            if quota == 0:
                continue
            f = start + j
            candidates = x[f, rest[f]]
            score = density_peak_scores(dpc_distances(candidates), knn)
            pick = torch.argsort(score, descending=True, stable=True)[:quota]
            rows.append(f * m + rest[f, pick])
            out.append(merge_into(candidates[pick], pool, beta))
        start += length
    rows_all, out_all = torch.cat(rows), torch.cat(out)
    perm = torch.argsort(rows_all)
    return rows_all[perm], out_all[perm]


@dataclass(frozen=True)
class FastVID:
    retention: float = 0.10  # fastvid_retention_ratio
    min_segments: int = 8  # c (DySeg_c)
    tau: float = 0.9  # DySeg_tau
    context_share: float = 0.4  # d (STPrune_d): share of each frame's budget that is density-merged context
    anchor_interval: int = 4  # p (DTM_p)
    beta: float = 0.6  # DTM_beta: least weight an anchor keeps in its merge
    knn: int = 4  # k of the kNN density
    name: ClassVar[str] = "fastvid"
    requires: ClassVar[frozenset[str]] = frozenset({"vision_attention"})
    emits_rows: ClassVar[bool] = True  # salient tokens at their rows, merged ones at their anchor's

    def __post_init__(self) -> None:
        checks = {
            "retention": 0.0 < self.retention <= 1.0, "min_segments": self.min_segments >= 1,
            "tau": -1.0 <= self.tau <= 1.0, "context_share": 0.0 <= self.context_share <= 1.0,
            "anchor_interval": self.anchor_interval >= 1, "beta": 0.0 <= self.beta <= 1.0, "knn": self.knn >= 1,
        }
        for field, ok in checks.items():
            if not ok:
                raise ValueError(f"fastvid: {field} out of range, got {getattr(self, field)!r} "
                                 "(retention in (0, 1], tau in [-1, 1], context_share/beta in [0, 1], ints >= 1)")

    def split(self, per_frame: int) -> tuple[int, int]:
        """(salient, contextual) tokens per frame of `per_frame`."""
        retain = min(per_frame, max(1, math.floor(round(self.retention * per_frame, 6))))  # 0.3·10 = 2.999…
        context = math.floor(round(self.context_share * retain, 6))
        return retain - context, context

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        return frames * sum(self.split(per_frame)) if per_frame > 0 else 0

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        tokens = encoded.tokens
        t, m, _ = tokens.shape
        if t == 0 or m == 0:
            return VisualSequence.select(encoded, torch.empty(0, dtype=torch.long))
        received, _ = ctx.backbone.vision_attention(ctx.frames)
        if tuple(received.shape) != (t, m):
            raise ValueError(f"fastvid: vision_attention gave {list(received.shape)} for tokens [{t}, {m}, ...]")
        sizes = dyseg(tokens.float().mean(dim=1), self.min_segments, self.tau)
        salient, context = self.split(m)
        rows, out = stprune(tokens.cpu(), received.cpu(), sizes, salient, context, self.anchor_interval,
                            self.beta, self.knn)
        return VisualSequence(out.to(tokens.device, tokens.dtype), rows, encoded)
