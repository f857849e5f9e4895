"""Frame selectors: which frames of a video are decoded, and which of those reach the model.

Selection runs in two steps so that only needed frames are decoded: `plan` names the candidate frames
from the video's metadata alone; `select` picks from the decoded candidates (query-aware methods look
at their pixels; uniform sampling keeps them all).
"""

from __future__ import annotations

from typing import Protocol

from harness.core.records import Frames, FrameSelection, Sample, VideoMeta
from harness.core.registry import Registry


class FrameSelector(Protocol):
    name: str

    def plan(self, meta: VideoMeta) -> tuple[int, ...]:
        """Sorted, unique frame numbers to decode."""
        ...

    def select(self, sample: Sample, meta: VideoMeta, frames: Frames) -> FrameSelection:
        """The frames (a subset of `frames.indices`) that reach the model, sorted by time."""
        ...


SELECTORS: Registry = Registry("frame selector")
SELECTORS.register("uniform", "baselines.uniform:Uniform")
SELECTORS.register("dks", "harness.vilamp.selector:DKSSelector")  # ViLAMP keyframes, in memory
SELECTORS.register("dks-stream", "harness.vilamp.selector:StreamingDKS")  # ViLAMP keyframes, chunked (10K frames)
SELECTORS.register("topk", "baselines.topk:TopK")
SELECTORS.register("aks", "baselines.aks:AKS")
SELECTORS.register("bolt", "baselines.bolt:BOLT")
