"""What the query-aware keyframe selectors (top-k, AKS, BOLT, AdaRD-Key, key clips) share: the candidate pool and
frame relevance.

Every method scores a 1 fps pool (notes/baselines.md §B), capped at 600 frames like ViLAMP's eval scripts
(scripts/eval/exp_*.py), so the keyframe baselines and ViLAMP choose from the same candidates. Relevance is
the cosine between an image–text encoder's frame and query embeddings (harness.methods.encoders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

from baselines.uniform import fps_indices
from harness.core.records import Frames, FrameSelection, Sample, VideoMeta
from harness.methods.encoders import check_encoder, load_encoder

POOL_FPS = 1.0
POOL_CAP = 600
Query = Literal["question", "question+options"]


def candidate_pool(meta: VideoMeta, fps: float = POOL_FPS, cap: int | None = POOL_CAP) -> tuple[int, ...]:
    return fps_indices(meta, fps, cap)


def query_text(sample: Sample, query: Query) -> str:
    if query == "question":
        return sample.question
    if query == "question+options":
        return "\n".join([sample.question, *sample.options])
    raise ValueError(f"unknown query mode {query!r}; valid: question, question+options")


def embeddings_and_relevance(encoder: str, sample: Sample, frames: Frames,
                             query: Query = "question") -> tuple[torch.Tensor, np.ndarray]:
    """(L2-normalised frame embeddings [len(frames), D] float, their cosine to the query text float64 [len(frames)])."""
    model = load_encoder(encoder)
    images = torch.nn.functional.normalize(model.embed_images(frames).float(), dim=-1)
    text = torch.nn.functional.normalize(model.embed_text(query_text(sample, query)).float(), dim=-1)
    return images, (images @ text).double().numpy()


def relevance(encoder: str, sample: Sample, frames: Frames, query: Query = "question") -> np.ndarray:
    """Cosine similarity of each frame to the query text: float64 [len(frames)]."""
    return embeddings_and_relevance(encoder, sample, frames, query)[1]


def minmax(scores: np.ndarray) -> np.ndarray:
    """Scores rescaled to [0, 1]; all zeros when they are constant."""
    low, high = float(scores.min()), float(scores.max())
    return (scores - low) / (high - low) if high > low else np.zeros_like(scores)


@dataclass(frozen=True)
class KeyframeSelector:
    """Plan the 1 fps candidate pool, score it by query relevance, keep the positions `choose` returns."""

    encoder: str = "clip-vit-b32"
    query: Query = "question"
    fps: float = POOL_FPS
    max_candidates: int | None = POOL_CAP
    name: ClassVar[str] = "keyframes"
    streaming: ClassVar[bool] = False
    # the image-text encoder is the selector's own (harness.methods.encoders), not a backbone hook
    requires: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        check_encoder(self.encoder)

    def preflight(self) -> None:
        check_encoder(self.encoder, on_disk=True)

    def choose(self, scores: np.ndarray) -> list[int]:
        """Positions into the pool, sorted by time."""
        raise NotImplementedError

    def frame_budget(self, per_frame: int | None) -> tuple[int, int | None] | None:
        """Every keyframe selector keeps a fixed number of whole frames from a long enough pool (`frames_kept`)."""
        return self.frames_kept(), per_frame

    def frames_kept(self) -> int:
        raise NotImplementedError

    def plan(self, meta: VideoMeta) -> tuple[int, ...]:
        return candidate_pool(meta, self.fps, self.max_candidates)

    def select(self, sample: Sample, meta: VideoMeta, frames: Frames) -> FrameSelection:
        scores = relevance(self.encoder, sample, frames, self.query)
        chosen = self.choose(scores)
        return FrameSelection(self.name, tuple(frames.indices[i] for i in chosen),
                              scores=tuple(float(scores[i]) for i in chosen))
