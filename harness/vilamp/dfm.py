"""Differential feature merging (DFM): one token per non-keyframe, weighted toward query-relevant patches that
differ from the same patch position of the frame's reference keyframe.

    w_n = softmax_m((R[n, m] − λ·T[n, m]) / α),   t_n = Σ_m w_n^m · p_n^m
    R = cos(patch, query),  T = cos(patch, same-position patch of the reference keyframe)

The official model computes R and T after learned linear maps with λ = 1 and a learned α (`tau`, init 0.01);
that scorer lives in harness/vilamp/model.py. The training-free scorer here uses the raw features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

ALPHA_DEFAULT = 0.01  # SigPooling.tau initial value in the official code
LAMBDA_DEFAULT = 1.0  # the official code has no λ (≡ 1)


class PatchScorer(Protocol):
    def scores(self, patches: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """Patch logits [n, M] for patches [n, M, C] and their reference-keyframe patches [n, M, C]."""
        ...


@dataclass(frozen=True, eq=False)
class CosineScorer:
    """Training-free DFM logits: (cos(p, q) − λ·cos(p, r)) / α, with q in the patches' own space."""

    query: torch.Tensor  # [C]
    alpha: float = ALPHA_DEFAULT
    lam: float = LAMBDA_DEFAULT

    def scores(self, patches: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        p = patches.float()
        rel = F.normalize(p, dim=-1) @ F.normalize(self.query.float().to(p.device), dim=-1)
        red = F.cosine_similarity(p, references.float(), dim=-1)
        return (rel - self.lam * red) / self.alpha


def merge(patches: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Σ_m softmax_m(scores) · patches: [n, M, C] × [n, M] → [n, C] (weights sum to 1)."""
    weights = torch.softmax(scores.float(), dim=-1)
    return torch.einsum("nm,nmc->nc", weights, patches.float()).to(patches.dtype)


def reference_positions(n_frames: int, keyframes: list[int], official_indexing: bool = False) -> list[int]:
    """The reference frame position for every frame position 0..N−1 (keyframes refer to themselves).

    Paper: the nearest preceding keyframe; frames before the first keyframe use the first keyframe.
    `official_indexing` reproduces the released code (llava_arch.py, `img_embs[idx]`): frames before the first
    keyframe refer to themselves and frames in segment [kf_i, kf_{i+1}) refer to *frame number i*, not keyframe
    i — a bug, kept only as a reproduction aid for the official checkpoint.
    """
    kfs = sorted(keyframes)
    if not kfs:
        raise ValueError("DFM needs at least one keyframe")
    refs = []
    segment = -1
    for n in range(n_frames):
        while segment + 1 < len(kfs) and kfs[segment + 1] <= n:
            segment += 1
        if official_indexing:
            refs.append(n if segment < 0 else segment)
        else:
            refs.append(kfs[max(segment, 0)])
    for kf in kfs:
        refs[kf] = kf
    return refs
