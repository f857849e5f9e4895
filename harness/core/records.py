"""Typed records passed between pipeline stages, and nothing else.

task → Sample → VideoMeta → FrameSelection → Frames → EncodedVideo → VisualSequence → Generation
→ Prediction → SampleResult
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.core.status import Status

if TYPE_CHECKING:  # records hold tensors; torch is imported by the stages that make them
    import torch

LETTERS = string.ascii_uppercase  # option letters: option i is LETTERS[i]


@dataclass(frozen=True)
class Sample:
    """One multiple-choice question about one video, in the canonical form every loader produces."""

    id: str
    task: str
    video: str  # absolute path of the video file
    question: str
    options: tuple[str, ...]  # option texts without their "A. " prefix
    answer: int | None  # 0-based index of the gold option; None when the split has no labels
    video_id: str = ""  # groups questions about the same video (clustered statistics)
    duration_s: float | None = None
    breakdown: dict[str, str] = field(default_factory=dict)  # e.g. {"duration": "long", "task_type": "count"}
    evidence_spans_s: tuple[tuple[float, float], ...] = ()  # [start, end) seconds of each needle, when known
    meta: dict[str, Any] = field(default_factory=dict)  # original row fields worth keeping


@dataclass(frozen=True)
class VideoMeta:
    """A video stream as displayed: `width` × `height` after its rotation (a phone clip's display matrix)."""

    path: str
    num_frames: int
    fps: float  # average rate
    width: int
    height: int
    rotation: int = 0  # degrees counter-clockwise the decoders turn the stored frames to display them
    # presentation time of every frame (s, from the first) when the rate varies; empty: frame i is at i / fps
    frame_times_s: tuple[float, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    def time_of(self, index: int) -> float:
        """Presentation time of frame `index` (s)."""
        return self.frame_times_s[index] if self.frame_times_s else index / self.fps


@dataclass(frozen=True)
class FrameSelection:
    """Which decoded frames reach the model. `indices` are frame numbers of the video, sorted."""

    method: str
    indices: tuple[int, ...]
    keyframes: tuple[int, ...] = ()  # subset of `indices` kept whole (keyframe methods); empty = all whole
    scores: tuple[float, ...] = ()  # per-index relevance, when the method computes one
    # Encode every frame with its token grid's side divided by this (the backbone hook coarse_encode: key clips
    # trade per-frame resolution for more frames at a fixed token budget); None: the backbone's full encode.
    grid_downscale: int | None = None


@dataclass(frozen=True, eq=False)
class Frames:
    """Decoded RGB frames: pixels [T, H, W, 3] uint8 with their frame numbers and timestamps."""

    indices: tuple[int, ...]
    timestamps_s: tuple[float, ...]
    pixels: np.ndarray
    backend: str = "decord"

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True, eq=False)
class EncodedVideo:
    """What `Backbone.encode_frames` returns: per-row visual tokens in the LLM's input space.

    A row is one frame, or one temporal group of `frames_per_row` consecutive frames (Qwen2.5-VL patches 2 frames
    at a time; an odd tail group is padded with its last frame). `grid` is (rows, height, width) in LLM tokens for
    backbones that place each token by its grid position (M-RoPE); None for sequential placement.
    """

    tokens: torch.Tensor  # [T, M, C]
    timestamps_s: tuple[float, ...]  # of the frames encoded (len = frames, not rows)
    frames_per_row: int = 1
    grid: tuple[int, int, int] | None = None

    @property
    def flat(self) -> torch.Tensor:
        """[T·M, C]: flat row t·M + m is token m of row t."""
        return self.tokens.reshape(-1, self.tokens.shape[-1])


@dataclass(frozen=True)
class LlmPrune:
    """In-LLM visual token pruning in stages (FastV: one stage; PyramidDrop: several). From layer `layers[s]` on,
    only the top `counts(N)[s]` of the N visual tokens entering the LLM remain, ranked among the survivors of the
    previous stage by the attention the last prompt token pays them (mean over heads) in layer `layers[s]` − 1
    (`rank="previous"`, FastV) or in layer `layers[s]` itself on its input (`rank="own"`, PyramidDrop). A stage keeps
    `keep_ratios[s]` of the original N, rounded up (FastV) or down (PyramidDrop's int()). Kept tokens keep their
    original positions."""

    layers: tuple[int, ...]
    keep_ratios: tuple[float, ...]
    rank: str = "previous"  # or "own"
    rounding: str = "ceil"  # or "floor"

    def __post_init__(self) -> None:
        if not self.layers or len(self.layers) != len(self.keep_ratios):
            raise ValueError(f"LlmPrune: one keep ratio per stage layer, got layers {self.layers} and "
                             f"keep_ratios {self.keep_ratios}")
        if self.rank not in ("previous", "own") or self.rounding not in ("ceil", "floor"):
            raise ValueError(f"LlmPrune: rank must be 'previous' or 'own' and rounding 'ceil' or 'floor', got "
                             f"{self.rank!r}, {self.rounding!r}")
        if list(self.layers) != sorted(set(self.layers)) or self.layers[0] < 1:
            raise ValueError(f"LlmPrune.layers must be strictly increasing and >= 1 (pruning happens inside the LLM, "
                             f"after at least one layer), got {self.layers}")
        ratios = list(self.keep_ratios)
        if any(not 0.0 < r <= 1.0 for r in ratios) or ratios != sorted(ratios, reverse=True):
            raise ValueError(f"LlmPrune.keep_ratios must be in (0, 1] and non-increasing, got {self.keep_ratios}")

    @classmethod
    def fastv(cls, layer: int, keep_ratio: float) -> LlmPrune:
        return cls((layer,), (keep_ratio,))

    def counts(self, n: int) -> tuple[int, ...]:
        """Visual tokens remaining after each stage, of n entering (at least one while any entered)."""
        out, remaining = [], n
        for ratio in self.keep_ratios:
            kept = math.ceil(ratio * n) if self.rounding == "ceil" else int(ratio * n)
            remaining = min(remaining, max(kept, 1 if n else 0))
            out.append(remaining)
        return tuple(out)


@dataclass(frozen=True)
class LlmFuse:
    """FrameFusion's in-LLM reduction: in the first LLM layers, each visual token whose hidden state is at least
    `similarity` cosine-similar to the surviving token at the same patch position in an earlier frame is merged
    into it, layer after layer while the merged share stays at least `min_ratio`; then the least-attended tokens
    are pruned so that the visual tokens averaged over the LLM's layers are `cost` of those entering."""

    cost: float = 0.3
    similarity: float = 0.6
    min_ratio: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.cost <= 1.0 or not -1.0 <= self.similarity <= 1.0 or not 0.0 <= self.min_ratio <= 1.0:
            raise ValueError(f"LlmFuse: cost must be in (0, 1], similarity in [-1, 1], min_ratio in [0, 1], got "
                             f"{self.cost}, {self.similarity}, {self.min_ratio}")


@dataclass(frozen=True, eq=False)
class VisualSequence:
    """What a token reducer returns and `Backbone.generate` reads: the visual tokens entering the LLM, in order.

    `rows[i]` is the flat row of `source` (t·M + m) whose position token i takes: its own row for a kept token,
    a representative row for a merged one (DFM: its largest-weight patch). Backbones that place tokens by grid
    position (M-RoPE) need `rows` and `source`; None means "not rows of an encoding" (sequential placement only).
    `llm_prune` asks the backbone to reduce visual tokens inside the LLM (FastV, PyramidDrop: LlmPrune; FrameFusion:
    LlmFuse).
    """

    tokens: torch.Tensor  # [L, C]
    rows: torch.Tensor | None = None  # [L] long
    source: EncodedVideo | None = None
    llm_prune: LlmPrune | LlmFuse | None = None

    def __post_init__(self) -> None:
        if self.tokens.ndim != 2:
            raise ValueError(f"VisualSequence.tokens must be [L, C], got {list(self.tokens.shape)}")
        if self.rows is not None and len(self.rows) != self.tokens.shape[0]:
            raise ValueError(f"VisualSequence: {len(self.rows)} rows for {self.tokens.shape[0]} tokens")

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @classmethod
    def whole(cls, encoded: EncodedVideo, llm_prune: LlmPrune | LlmFuse | None = None) -> VisualSequence:
        """Every encoded token, in order (no reduction before the LLM)."""
        import torch

        flat = encoded.flat
        return cls(flat, torch.arange(flat.shape[0]), encoded, llm_prune)

    @classmethod
    def select(cls, encoded: EncodedVideo, rows: torch.Tensor) -> VisualSequence:
        """The encoded tokens at flat `rows`, in that order (a reducer that keeps a subset)."""
        import torch

        rows = torch.as_tensor(rows, dtype=torch.long).flatten()
        return cls(encoded.flat[rows.to(encoded.tokens.device)], rows.cpu(), encoded)


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 16
    do_sample: bool = False  # greedy: deterministic across workers
    # When set, the answer is the one of these strings whose first token the model scores highest right after
    # the prompt (one constrained greedy step): how a model that cannot follow the answer format still answers.
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt. The backbone puts the video before the user text (its chat template's placeholder)."""

    system: str
    user: str
    assistant_prefix: str = ""  # pre-filled assistant turn, e.g. MLVU's "Best Option: ("
    profile: str = "default"


@dataclass(frozen=True)
class Generation:
    text: str
    visual_tokens: int  # visual tokens entering the LLM
    text_tokens: int  # prompt tokens that are not visual
    generated_tokens: int
    timings_s: dict[str, float] = field(default_factory=dict)  # the backbone's: prefill, decode
    visual_tokens_after_llm_prune: int | None = None  # in-LLM pruning (FastV): visual tokens from layer K on


@dataclass(frozen=True)
class Prediction:
    raw: str
    answer: int | None  # 0-based option index, None when nothing could be parsed
    extractor: str


@dataclass(frozen=True)
class SampleResult:
    """One journal line: everything known about one sample after it ran (or failed)."""

    id: str
    task: str
    model: str
    status: Status
    gold: int | None
    pred: int | None = None
    correct: bool = False
    raw_output: str = ""
    error: str = ""
    video_id: str = ""
    breakdown: dict[str, str] = field(default_factory=dict)
    n_frames_decoded: int = 0
    frame_indices: tuple[int, ...] = ()
    keyframes: tuple[int, ...] = ()
    n_frames: int = 0  # frames that reach the model in any form (ViLAMP: all N, non-keyframes as one token)
    n_keyframes: int = 0  # of those, frames kept whole (every frame, for methods without keyframes)
    visual_tokens: int = 0
    visual_tokens_after_llm_prune: int | None = None  # None: no in-LLM pruning
    text_tokens: int = 0
    generated_tokens: int = 0
    needle_retained: bool | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    worker: str = ""
    worker_node: str = ""  # the Ray node the model actor ran on (first 8 hex digits of its id)
    worker_device: str = ""  # the model actor's device: "cpu", or its GPUs ("CUDA_VISIBLE_DEVICES=1") when placed on one
    attempts: int = 1
    prompt_profile: str = ""  # the task prompt profile the answer was produced with
