"""Frame selectors: which frames of a video are decoded, and which of those reach the model.

Selection runs in two steps so that only needed frames are decoded: `plan` names the candidate frames
from the video's metadata alone; `select` picks from the decoded candidates (query-aware methods look
at their pixels; uniform sampling keeps them all). A selector declares the backbone hooks it needs in
`requires` (checked by the preflight), and `streaming = True` when it decodes its frames itself, a chunk at a time,
inside the model actor (ViLAMP at 10K frames: `select_stream`, paired with a reducer that has `reduce_stream`).
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from harness.core.records import Frames, FrameSelection, Sample, VideoMeta
from harness.core.registry import Registry


class FrameSelector(Protocol):
    name: ClassVar[str]
    requires: frozenset[str]  # backbone hooks; may depend on the arguments (DKS with encoder="backbone")
    streaming: ClassVar[bool]

    def preflight(self) -> None:
        """ConfigError (one line) when what the selector needs on disk is absent (its own encoder's weights)."""
        ...

    def plan(self, meta: VideoMeta) -> tuple[int, ...]:
        """Sorted, unique frame numbers to decode."""
        ...

    def select(self, sample: Sample, meta: VideoMeta, frames: Frames) -> FrameSelection:
        """The frames (a subset of `frames.indices`) that reach the model, sorted by time."""
        ...

    def frame_budget(self, per_frame: int | None) -> tuple[int, int | None] | None:
        """(frames reaching the model, tokens per frame) on a video long enough to fill the selection, for a backbone
        giving `per_frame` tokens per full frame; None when the frame count depends on the video (fps, DKS)."""
        ...


SELECTORS: Registry = Registry("frame selector")
SELECTORS.register("uniform", "baselines.uniform:Uniform")
SELECTORS.register("dks", "harness.vilamp.selector:DKSSelector")  # ViLAMP keyframes, in memory
SELECTORS.register("dks-stream", "harness.vilamp.selector:StreamingDKS")  # ViLAMP keyframes, chunked (10K frames)
SELECTORS.register("topk", "baselines.topk:TopK")
SELECTORS.register("aks", "baselines.aks:AKS")
SELECTORS.register("bolt", "baselines.bolt:BOLT")
SELECTORS.register("adardkey", "baselines.adardkey:AdaRDKey")  # relevance + log-det diversity, gated
SELECTORS.register("keyclips", "baselines.keyclips:KeyClips")  # anchor keyframes expanded into coarse clips
