"""FlashVID — Efficient Video LLMs via Training-free Tree-Based Spatiotemporal Token Merging (Fan et al., ICLR 2026
oral, arXiv 2602.08024; official code Fanziyang-v/FlashVID).

Each row (frame) keeps B = ⌈M · retention · expansion⌉ of its M tokens: A = ⌈α·B⌉ by ADTS, S = B − A by TSTM.
1. DySeg (FastVID's, baselines.fastvid.dyseg): cut the video where the cosine of consecutive frame-mean tokens
   falls below 0.9, then at the lowest-similarity transitions until there are `min_segments` segments
   (utils.segment / additional_segment).
2. ADTS, per frame: the calibrated max–min diversity problem solved greedily. d_ij = 1 − cos(x_i, x_j) is scaled by
   column j's calibration c_j (the attention token j receives; "attn_div_v2" also × x_j · the segment's mean token,
   its event relevance); the first token maximises its calibrated distance to its nearest neighbour, each next one
   maximises min over the chosen s of c_j·d_sj (token_selection.attn_div[_v2]_based_token_selection): DivPrune's
   greedy with column weights (baselines.divprune.max_min_diverse). SigLIP has no CLS: the official LLaVA-OV
   patch returns the last feature layer's softmax attention averaged over heads and queries
   (siglip_encoder.SigLipAttention_forward), 2-D pooled like the features; on Qwen2.5-VL the last ViT block's,
   averaged over each token's 2×2 patches — exactly the "vision_attention" hook.
3. TSTM, per segment, on the tokens ADTS left: each token of frame t ≥ 1 is linked to its most similar (cosine)
   unselected token of frame t − 1 when that similarity exceeds τ = 0.8; the links form redundancy trees rooted
   at an unlinked token, and each tree becomes one token, the uniform mean of its members, at its root's position.
   Should fewer than S·F trees remain, τ becomes the similarity ranked F·(M − B)-th, links strictly above it
   only, leaving S·F + 1 (utils.spatiotemporal_compression).
4. The roots are then clustered per frame by DPC-kNN (k = min(clusters, 7), Euclidean distance / √C) into S·F
   tokens in all, each the mean of its cluster at its centre's position (utils.segment_compression, dpc_knn).
Output in time and grid order (flat rows of the representatives, as the official sort by global index).
Official defaults (flashvid/__init__.py flashvid(), scripts/llava_ov.sh): retention 0.25 (scripts sweep 0.10–0.25),
α 0.7, τ 0.8, DySeg threshold 0.9, min_segment_num 8 (Qwen2.5-VL script: 4), ADTS "attn_div_v2" (Qwen2.5-VL
script: "attn_div"), expansion 1.25 with FastV-style pruning to 30% of the visual tokens from LLM layer 20
(utils.fastv_prune) so that the layer-averaged retention is the nominal one.
Deviations: expansion defaults to 1.0 and in-LLM pruning to off, so `retention` is the share of tokens entering the
LLM (budget-matched with the other reducers); expansion=1.25, llm_layer=20 restore the official pairing (LlmPrune).
The official per-frame cluster counts ⌈n_f · S·F / R⌉ can overshoot S·F by up to F − 1 tokens; here the S·F
clusters are apportioned by largest remainder (a frame with few roots may get none), so the count is exactly F·B.
DPC-kNN's random density jitter becomes a deterministic tie-break (lower index first); ADTS never re-picks a token
(v2's loop can, on duplicate tokens or negative calibrations); a one-frame segment clusters its unselected tokens
only (the official clusters all M, duplicating the ADTS picks); τ ≥ 1 skips the trees (the official divides by 0).
Hook: "vision_attention" on the backbone (plus "llm_prune" when llm_layer > 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import torch
import torch.nn.functional as F

from baselines.apportion import largest_remainder
from baselines.divprune import max_min_diverse
from baselines.fastvid import density_peak_scores, dpc_distances, dyseg
from harness.core.records import EncodedVideo, LlmPrune, VisualSequence
from harness.methods.reduction import ReductionContext

SELECTIONS = ("attn_div", "attn_div_v2")
DPC_NEIGHBOURS = 7  # utils.segment_compression: k = min(num_clusters, 7)


def split_budget(m: int, retention: float, expansion: float, alpha: float) -> tuple[int, int]:
    """(ADTS tokens A, TSTM tokens S) per row of m tokens (utils.flashvid_compression)."""
    budget = min(m, max(1, math.ceil(round(m * retention * expansion, 9))))  # round: 16·0.25 must stay 4
    selected = math.ceil(round(budget * alpha, 9))
    return selected, budget - selected


def calibration(tokens: torch.Tensor, received: torch.Tensor, selection: str) -> torch.Tensor:
    """ADTS's per-token calibration [F, M] for one segment's rows [F, M, C]."""
    weight = received.float()
    if selection == "attn_div_v2":  # event relevance: the dot with the mean of the segment's frame means
        weight = weight * (tokens.float() @ tokens.float().mean(dim=(0, 1)))
    return weight


def adts(tokens: torch.Tensor, weight: torch.Tensor, k: int) -> torch.Tensor:
    """Sorted positions of the k tokens of one frame [M, C] chosen by the calibrated greedy max–min rule: DivPrune's,
    with column j of the cosine distances scaled by token j's calibration."""
    if k <= 0:
        return torch.empty(0, dtype=torch.long)
    return torch.sort(max_min_diverse(tokens, k, weight)).values


def redundancy_trees(tokens: torch.Tensor, free: torch.Tensor, threshold: float, min_roots: int):
    """TSTM on one segment's rows [F, M, C] whose unselected tokens are `free` [F, M].

    Returns (roots [F, M] bool: the free tokens that start a tree, tree [F, M]: the flat position t·M + m of each
    token's root, values [F·M, C] float: at each root, the mean of its tree).
    """
    f, m, c = tokens.shape
    flat = tokens.reshape(f * m, c).float()
    unit = F.normalize(flat, dim=-1).reshape(f, m, c)
    similarity = unit[1:] @ unit[:-1].transpose(1, 2)  # [F-1, M, M]: token n of frame t vs token m of t - 1
    similarity = similarity.masked_fill(~(free[1:, :, None] & free[:-1, None, :]), -1.0)
    best, parent = similarity.max(-1)
    best = torch.cat([torch.full((1, m), -1.0), best])
    parent = torch.cat([torch.zeros(1, m, dtype=torch.long), parent])
    links = best > threshold
    if int((free & ~links).sum()) < min_roots:  # keep at least S·F trees: raise τ to the k-th largest similarity
        k = int(free.sum()) - min_roots
        soft = float(torch.topk(best.flatten(), k).values[-1]) if k > 0 else math.inf
        links = best > max(soft, -1.0 + 1e-6)
    tree = torch.arange(f * m).reshape(f, m)
    for t in range(1, f):  # a root is reached through its parent's root
        tree[t] = torch.where(links[t], tree[t - 1][parent[t]], tree[t])
    sums = torch.zeros_like(flat).index_add_(0, tree.flatten(), flat)
    counts = torch.bincount(tree.flatten(), minlength=f * m).clamp(min=1)
    return free & ~links, tree, sums / counts[:, None]


def dpc_knn(features: torch.Tensor, clusters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cluster of each row [n], centre rows [clusters]): the top density-peak scores are the centres (FastVID's
    DPC-kNN, here with k = min(clusters, 7)), every other row joins its nearest centre."""
    dist = dpc_distances(features)
    scores = density_peak_scores(dist, min(clusters, DPC_NEIGHBOURS))
    centres = torch.sort(scores, descending=True, stable=True).indices[:clusters]
    assign = dist[:, centres].argmin(-1)
    assign[centres] = torch.arange(clusters)
    return assign, centres


def apportion(sizes: list[int], total: int) -> list[int]:
    """Largest-remainder split of `total` (≤ sum(sizes)) in proportion to `sizes`, ties to the earlier one; exact
    quotas, so equal remainders tie exactly, and none exceeds its size."""
    whole = sum(sizes)
    quotas = [Fraction(s * total, whole) if whole else Fraction(0) for s in sizes]
    return largest_remainder(quotas, total, 0, max(sizes, default=0))


def compress_segment(tokens: torch.Tensor, received: torch.Tensor, offset: int, selected: int, merged: int,
                     threshold: float, selection: str) -> tuple[list[torch.Tensor], list[int]]:
    """One segment's rows [F, M, C] → (output tokens, their flat rows in the whole video), F·(A + S) of each."""
    f, m, c = tokens.shape
    weight = calibration(tokens, received, selection)
    free = torch.ones(f, m, dtype=torch.bool)
    out, rows = [], []
    for t in range(f):
        keep = adts(tokens[t], weight[t], selected)
        free[t, keep] = False
        out.extend(tokens[t, keep].float())
        rows.extend((offset + t) * m + keep)
    if merged == 0:
        return out, [int(r) for r in rows]
    if f > 1 and threshold < 1.0:
        roots, _, values = redundancy_trees(tokens, free, threshold, merged * f)
    else:
        roots, values = free, tokens.reshape(f * m, c).float()
    positions = [torch.nonzero(roots[t])[:, 0] for t in range(f)]
    for t, (where, k) in enumerate(zip(positions, apportion([len(p) for p in positions], merged * f))):
        if k == 0:
            continue
        members = values[t * m + where]
        if k == len(where):
            out.extend(members)
            rows.extend((offset + t) * m + where)
            continue
        assign, centres = dpc_knn(members, k)
        sums = torch.zeros(k, c).index_add_(0, assign, members)
        out.extend(sums / torch.bincount(assign, minlength=k)[:, None])
        rows.extend((offset + t) * m + where[centres])
    return out, [int(r) for r in rows]


@dataclass(frozen=True)
class FlashVID:
    retention: float = 0.25  # flashvid(retention_ratio)
    alpha: float = 0.7  # ADTS share of each row's budget
    temporal_threshold: float = 0.8  # τ, TSTM
    selection: str = "attn_div_v2"  # ADTS calibration: attention × event relevance ("attn_div": attention only)
    segment: bool = True  # DySeg (do_segment)
    segment_threshold: float = 0.9
    min_segments: int = 8
    expansion: float = 1.0  # official 1.25, paired with the in-LLM pruning below
    llm_layer: int = 0  # 0: no in-LLM pruning; official 20
    llm_keep: float = 0.3  # share of visual tokens kept from llm_layer on (llm_retention_ratio)
    name: ClassVar[str] = "flashvid"
    emits_rows: ClassVar[bool] = True  # a kept token its own row, a tree its root's, a cluster its centre's

    def __post_init__(self) -> None:
        if not 0.0 < self.retention <= 1.0 or not 0.0 <= self.alpha <= 1.0 or self.expansion <= 0:
            raise ValueError(f"flashvid: retention must be in (0, 1], alpha in [0, 1] and expansion > 0, got "
                             f"{self.retention}, {self.alpha}, {self.expansion}")
        if not -1.0 <= self.temporal_threshold <= 1.0 or not -1.0 <= self.segment_threshold <= 1.0:
            raise ValueError(f"flashvid: temporal_threshold and segment_threshold must be in [-1, 1], got "
                             f"{self.temporal_threshold}, {self.segment_threshold}")
        if self.selection not in SELECTIONS or self.min_segments < 1:
            raise ValueError(f"flashvid: selection must be one of {SELECTIONS} and min_segments >= 1, got "
                             f"{self.selection!r}, {self.min_segments}")
        if self.llm_layer < 0 or not 0.0 < self.llm_keep <= 1.0:
            raise ValueError(f"flashvid: llm_layer must be >= 0 (0: no in-LLM pruning) and llm_keep in (0, 1], got "
                             f"{self.llm_layer}, {self.llm_keep}")

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({"vision_attention", "llm_prune"} if self.llm_layer else {"vision_attention"})

    def request(self) -> LlmPrune | None:
        return LlmPrune.fastv(self.llm_layer, self.llm_keep) if self.llm_layer else None

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        return frames * sum(split_budget(per_frame, self.retention, self.expansion, self.alpha)) if per_frame else 0

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        tokens = encoded.tokens
        t, m, c = tokens.shape
        prune = self.request()
        if t == 0 or m == 0:
            return VisualSequence(tokens.new_zeros(0, c), torch.empty(0, dtype=torch.long), encoded, prune)
        received, _ = ctx.backbone.vision_attention(ctx.frames)
        cpu = tokens.detach().float().cpu()
        received = received.float().cpu()
        selected, merged = split_budget(m, self.retention, self.expansion, self.alpha)
        lengths = dyseg(cpu.mean(1), self.min_segments, self.segment_threshold) if self.segment else [t]
        out, rows, offset = [], [], 0
        for length in lengths:
            seg_out, seg_rows = compress_segment(cpu[offset : offset + length], received[offset : offset + length],
                                                 offset, selected, merged, self.temporal_threshold, self.selection)
            out.extend(seg_out)
            rows.extend(seg_rows)
            offset += length
        order = torch.argsort(torch.tensor(rows))
        merged_tokens = torch.stack(out)[order].to(device=tokens.device, dtype=tokens.dtype)
        return VisualSequence(merged_tokens, torch.tensor(rows)[order], encoded, prune)
