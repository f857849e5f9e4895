"""Differential keyframe selection (DKS): query-relevant frames that are not near-duplicates of each other.

Paper Algorithm 1: sort frames by relevance cos(f_n, q); walk the list and keep a frame iff fewer than K are
kept and its maximum cosine to the kept ones is below τ. The official code adds a relevance floor
(`f2t_thrd`, 0.2) and a fill-up to exactly K over the largest gaps (`distribute_frames`); both are switches
here, off by default (notes/vilamp.md §1.2). Memory is O(N·D + K·D): similarities to the kept frames are
computed per candidate, never as an N×N matrix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

K_DEFAULT = 32  # max_frame_num in the official config
TAU_DEFAULT = 0.85  # f2f_thrd: frame–frame cosine above which a frame counts as redundant
FLOOR_OFFICIAL = 0.2  # f2t_thrd in LlavaQwenConfig (CLIP ViT-B/32 cosine units)


def relevance(frame_emb: torch.Tensor, query_emb: torch.Tensor) -> torch.Tensor:
    """cos(f_n, q) for every frame: [N]."""
    return F.normalize(frame_emb.float(), dim=-1) @ F.normalize(query_emb.float(), dim=-1)


def dks(
    frame_emb: torch.Tensor,
    query_emb: torch.Tensor,
    k: int = K_DEFAULT,
    tau: float = TAU_DEFAULT,
    floor: float | None = None,
    fill: bool = False,
) -> list[int]:
    """Keyframe positions (0-based rows of `frame_emb` [N, D]), sorted by time."""
    if frame_emb.ndim != 2 or query_emb.ndim != 1 or frame_emb.shape[1] != query_emb.shape[0]:
        raise ValueError(f"need frame_emb [N, D] and query_emb [D], got {list(frame_emb.shape)} and "
                         f"{list(query_emb.shape)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    frames = F.normalize(frame_emb.float(), dim=-1)
    rel = frames @ F.normalize(query_emb.float(), dim=-1)
    order = torch.sort(rel, descending=True, stable=True).indices.tolist()  # ties: earlier frame first
    chosen: list[int] = []
    kept = torch.empty(0, frames.shape[1])
    for i in order:
        if len(chosen) == k or (floor is not None and rel[i] < floor):
            break
        if chosen and float((kept @ frames[i]).max()) > tau:  # strict >, as the official `f2f > f2f_thrd`
            continue
        chosen.append(i)
        kept = torch.cat([kept, frames[i : i + 1]])
    if fill:
        chosen = fill_to_k(chosen, len(frames), k)
    return sorted(chosen)


def fill_to_k(chosen: list[int], n: int, k: int) -> list[int]:
    """The official `distribute_frames`: add frames inside the longest unselected gaps until exactly min(K, N).

    Finds the smallest maximum gap length D with Σ_gaps (⌈len/D⌉ − 1) ≤ budget, places ⌈len/D⌉ − 1 frames
    evenly in each gap, then spends any leftover budget on unselected frames from the end of the video backwards.
    """
    selected = [False] * n
    for i in chosen:
        selected[i] = True
    budget = min(k, n) - sum(selected)
    if budget <= 0:
        return sorted(chosen)
    gaps, start = [], None  # maximal runs of unselected frames: (start, length)
    for i, s in enumerate([*selected, True]):
        if not s and start is None:
            start = i
        elif s and start is not None:
            gaps.append((start, i - start))
            start = None

    def extra(d: int) -> int:
        return sum(math.ceil(length / d) - 1 for _, length in gaps)

    lo, hi = 1, n
    while lo < hi:
        mid = (lo + hi) // 2
        if extra(mid) <= budget:
            hi = mid
        else:
            lo = mid + 1
    for begin, length in gaps:
        need = math.ceil(length / lo) - 1
        if need > 0:
            step = math.ceil(length / (need + 1))
            for j in range(need):
                selected[begin + step * (j + 1)] = True
    budget = min(k, n) - sum(selected)
    for i in range(n - 1, -1, -1):
        if budget <= 0:
            break
        if not selected[i]:
            selected[i] = True
            budget -= 1
    return [i for i, s in enumerate(selected) if s]
