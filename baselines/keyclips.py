"""Key clips (F2C) — "From Frames to Clips: Efficient Key Clip Selection for Long-Form Video Understanding"
(Sun, Singhal, Uzkent, Shah, Chen, Kessler; arXiv 2510.02262, 2025; v2 retitled "Training-free Adaptive Key Clip
Selection"). No official code was found (project page https://guangyusun.com/f2c only).

Algorithm: score a 1 fps pool by image–text relevance to the query (baselines.relevance); pick K anchor keyframes
(relevance + diversity: the local maxima of the relevance curve, split into K groups by 1-D k-means over their
time index, the most relevant of each group); expand every anchor into a clip of L consecutive pool frames centred
on it; clips that overlap are merged into one run, and the frames the overlap freed are given back by growing the
runs at their borders, most relevant neighbour first, so exactly min(K·L, pool) frames reach the model, every
one inside a contiguous run around an anchor. To hold the visual-token budget of K full frames fixed, every frame
is encoded with its token grid side divided by d = √L (hook coarse_encode): K·L frames × M/L tokens = K·M.
On LLaVA-OV (196 = 14×14 tokens; tiny 16 = 4×4) L = 4 gives 7×7 = 49 (tiny 2×2 = 4) tokens per frame.

Defaults and sources (only the paper's abstract and introduction were readable here; the method's facts come from
third-party summaries of it: themoonlight.io's review (en/ko), alphaxiv's overview, emergentmind):
- relevance r(f) = cos(E(f), E(Q)) with a CLIP/SigLIP encoder; for multiple choice Q is the question plus every
  option (summaries, "Anchor Key Frame Selection") → query="question+options". Encoder: the harness' CLIP ViT-B/32,
  as for the other keyframe selectors (no SigLIP registered).
- anchors: local maxima ("watersheds") of the relevance curve, K-means over their temporal index into K clusters,
  one anchor per cluster — its most relevant frame (our reading of a truncated summary) → anchor="peaks";
  anchor="topk" takes the K most relevant frames instead (with clip_len 1 the selection IS TopK(k=anchors)).
- K: the VLM's frame count, 32 as in the paper's motivating example and our other keyframe selectors → anchors=32.
- the budget: clips of L frames at a resolution whose token count per frame is 1/L of a keyframe's, "ensuring a
  constant token count per video" (abstract) → downscale = √L.
Deviations: L is one fixed `clip_len` per spec (default 4: the smallest L whose side ratio √L = 2 divides both the
7B's 14×14 and the tiny 4×4 grids exactly), not the paper's adaptive clip length module, whose rule we could not
read. Clip frames are consecutive frames of the 1 fps pool (the frames that were scored), not of the native frame
rate. The resolution is lowered after the vision encoder on LLaVA-OV (its SigLIP input size is fixed: the 27×27
patch grid is pooled to 7×7 instead of 14×14) and before it on Qwen2.5-VL (smaller frames; dynamic resolution).
K-means is solved exactly (1-D dynamic programming: deterministic; the paper's initialisation is not stated);
fewer peaks or non-empty clusters than K are topped up with the most relevant other frames, as BOLT tops up.
Budget: exactly K·M tokens when the pool holds ≥ K·L frames; a shorter video gives all its pool frames, coarse.
Pairs with reducers that read only the encoded tokens (none, tome, divprune, dycoke, vidcom2, fastv, pyramiddrop,
framefusion). The preflight refuses it with reducers that re-run the vision tower at full resolution through
vision_attention / vision_features / patch_features, whose grid would not match the coarse one (visionzip, fastvid,
flashvid); DFM is no pairing either: it needs a keyframe selector (DKS) and stops at reduce without one.
Hook: coarse_encode (encode_frames_coarse) whenever downscale > 1, plus the selector's own image–text encoder.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from baselines.relevance import KeyframeSelector, Query
from baselines.topk import top_k
from harness.core.records import Frames, FrameSelection, Sample, VideoMeta

COARSE_HOOK = "coarse_encode"


def local_maxima(scores: np.ndarray) -> list[int]:
    """Positions that rise above their left neighbour and are not below their right one (a plateau counts once, at
    its first frame); the ends compare with their single neighbour."""
    n = len(scores)
    return [i for i in range(n)
            if (i == 0 or scores[i] > scores[i - 1]) and (i == n - 1 or scores[i] >= scores[i + 1])]


def temporal_kmeans(positions: list[int], k: int) -> list[list[int]]:
    """1-D k-means of time positions into min(k, n) groups, solved exactly (in 1-D the optimal clusters are
    contiguous, so dynamic programming over split points finds the least squared error: deterministic, no
    initialisation to choose); groups sorted and in time order."""
    x = np.sort(np.asarray(positions, dtype=float))
    n, k = len(x), min(k, len(x))
    s1, s2 = np.r_[0.0, np.cumsum(x)], np.r_[0.0, np.cumsum(x * x)]
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")  # segment x[i..j]
    size = np.maximum(j - i + 1, 1)
    cost = np.where(j >= i, (s2[j + 1] - s2[i]) - (s1[j + 1] - s1[i]) ** 2 / size, np.inf)
    best, starts = cost[0].copy(), []  # best[j]: least error of x[..j] in the groups so far
    for _ in range(1, k):
        total = np.r_[np.inf, best[:-1]][:, None] + cost  # last group x[i..j] after groups covering x[..i-1]
        starts.append(np.argmin(total, axis=0))  # ties: the earliest split
        best = total[starts[-1], np.arange(n)]
    bounds, end = [], n - 1
    for split in reversed(starts):
        first = int(split[end])
        bounds.append((first, end))
        end = first - 1
    bounds.append((0, end))
    return [[int(v) for v in x[a : b + 1]] for a, b in reversed(bounds)]


def peak_anchors(scores: np.ndarray, k: int) -> list[int]:
    """F2C's anchors: the most relevant local maximum of each of k temporal clusters of the maxima, topped up with
    the most relevant other frames when there are fewer than k; sorted by time."""
    peaks = local_maxima(scores)
    if len(peaks) <= k:
        chosen = set(peaks)
    else:
        chosen = {max(group, key=lambda i: (scores[i], -i)) for group in temporal_kmeans(peaks, k)}
    for i in np.argsort(-scores, kind="stable"):
        if len(chosen) >= min(k, len(scores)):
            break
        chosen.add(int(i))
    return sorted(chosen)


def clip_window(anchor: int, length: int, total: int) -> range:
    """`length` consecutive positions centred on `anchor` (the extra one after it when even), shifted inside
    [0, total)."""
    start = min(max(0, anchor - (length - 1) // 2), max(0, total - length))
    return range(start, min(total, start + length))


def expand_clips(scores: np.ndarray, anchors: list[int], length: int) -> list[int]:
    """The union of the anchors' clips, grown at its runs' borders (most relevant neighbour first, ties earlier)
    until it holds min(len(anchors) · length, len(scores)) positions: overlaps merge, none counts twice."""
    total = len(scores)
    kept = {i for a in anchors for i in clip_window(a, length, total)}
    target = min(len(anchors) * length, total)
    while len(kept) < target:
        border = {j for i in kept for j in (i - 1, i + 1) if 0 <= j < total and j not in kept}
        kept.add(max(border, key=lambda j: (scores[j], -j)))
    return sorted(kept)


@dataclass(frozen=True)
class KeyClips(KeyframeSelector):
    anchors: int = 32  # K: anchor keyframes, the frame count whose full-resolution tokens are the budget
    clip_len: int = 4  # L: pool frames per clip
    downscale: int | None = None  # token-grid side divisor; None: √clip_len (the equal-budget trade)
    anchor: Literal["peaks", "topk"] = "peaks"
    query: Query = "question+options"
    name: ClassVar[str] = "keyclips"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.anchors < 1 or self.clip_len < 1:
            raise ValueError(f"keyclips: anchors and clip_len must be >= 1, got {self.anchors}, {self.clip_len}")
        if self.downscale is not None and self.downscale < 1:
            raise ValueError(f"keyclips: downscale must be >= 1, got {self.downscale}")
        if self.downscale is None and math.isqrt(self.clip_len) ** 2 != self.clip_len:
            raise ValueError(f"keyclips: clip_len {self.clip_len} is not a square, so no grid side ratio keeps the "
                             f"budget; set downscale (a token-grid side divisor) explicitly")

    @property
    def grid_downscale(self) -> int:
        return self.downscale if self.downscale is not None else math.isqrt(self.clip_len)

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({COARSE_HOOK}) if self.grid_downscale > 1 else frozenset()

    def frame_budget(self, per_frame: int | None) -> tuple[int, int | None] | None:
        """K·L frames at (side / downscale)² tokens each on a side×side grid (LLaVA-OV; = K · side² when downscale² =
        L); on Qwen2.5-VL the grid follows the frame size (per_frame None), so only the frame count is known."""
        frames = self.anchors * self.clip_len
        if per_frame is None:
            return frames, None
        side = math.isqrt(per_frame)
        if side * side != per_frame or side % self.grid_downscale:
            raise ValueError(f"keyclips: downscale {self.grid_downscale} does not divide a grid of {per_frame} tokens")
        return frames, (side // self.grid_downscale) ** 2

    def choose_anchors(self, scores: np.ndarray) -> list[int]:
        if self.anchor == "topk":
            return top_k(scores, self.anchors)
        return peak_anchors(scores, self.anchors)

    def choose(self, scores: np.ndarray) -> list[int]:
        return expand_clips(scores, self.choose_anchors(scores), self.clip_len)

    def select(self, sample: Sample, meta: VideoMeta, frames: Frames) -> FrameSelection:
        selection = super().select(sample, meta, frames)
        downscale = self.grid_downscale
        return dataclasses.replace(selection, grid_downscale=downscale if downscale > 1 else None)
