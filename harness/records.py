"""Typed records passed between pipeline stages, and nothing else.

task → Sample → VideoMeta → FrameSelection → Frames → Generation → Prediction → SampleResult
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Status = Literal["ok", "unparsed", "missing", "decode_error", "model_error", "oom", "timeout", "retries_exhausted"]


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
    path: str
    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0


@dataclass(frozen=True)
class FrameSelection:
    """Which decoded frames reach the model. `indices` are frame numbers of the video, sorted."""

    method: str
    indices: tuple[int, ...]
    keyframes: tuple[int, ...] = ()  # subset of `indices` kept whole (keyframe methods); empty = all whole
    scores: tuple[float, ...] = ()  # per-index relevance, when the method computes one


@dataclass(frozen=True, eq=False)
class Frames:
    """Decoded RGB frames: pixels [T, H, W, 3] uint8 with their frame numbers and timestamps."""

    indices: tuple[int, ...]
    timestamps_s: tuple[float, ...]
    pixels: np.ndarray
    backend: str = "decord"

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 16
    do_sample: bool = False  # greedy: deterministic across workers
    # When set, the answer is the one of these strings whose first token the model scores highest right after
    # the prompt (one constrained greedy step): how a model that cannot follow the answer format still answers.
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt. The backbone puts the video where `video_position` says (before the text)."""

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
    timings_s: dict[str, float] = field(default_factory=dict)  # vision / reduce / prefill / generate
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
    attempts: int = 1
    prompt_profile: str = ""  # the task prompt profile the answer was produced with
