"""Token reducers: what happens to per-frame visual tokens before they enter the LLM.

A reducer declares the hook it uses; `none` keeps every token in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from harness.core.records import Frames, FrameSelection, Sample
from harness.core.registry import Registry

Hook = Literal["none", "visual", "vision_attention", "llm", "llm_prune"]  # the backbone hook a reducer uses


@dataclass(frozen=True, eq=False)
class ReductionContext:
    """What a reducer may consult besides the tokens: the question, the chosen frames and the backbone's hooks."""

    sample: Sample
    selection: FrameSelection
    frames: Frames  # the frames whose tokens are being reduced, in time order
    backbone: Any  # a harness.backbones.Backbone; reducers call its hooks (embed_text, ...)


class TokenReducer(Protocol):
    name: str
    hook: Hook

    def reduce(self, tokens: torch.Tensor, ctx: ReductionContext) -> torch.Tensor:
        """Per-frame tokens [T, M, C] (T = len(ctx.frames)) in, the LLM's visual sequence [L, C] out."""
        ...


@dataclass(frozen=True)
class NoReduction:
    name: str = "none"
    hook: Hook = "none"

    def reduce(self, tokens: torch.Tensor, ctx: ReductionContext) -> torch.Tensor:
        return tokens.reshape(-1, tokens.shape[-1])


REDUCERS: Registry = Registry("token reducer")
REDUCERS.register("none", NoReduction)
REDUCERS.register("dfm", "harness.vilamp.reducer:DFMReducer")  # ViLAMP differential feature merging
REDUCERS.register("visionzip", "baselines.visionzip:VisionZip")
REDUCERS.register("tome", "baselines.tome:ToMe")
REDUCERS.register("dycoke", "baselines.dycoke:DyCoke")
REDUCERS.register("fastv", "baselines.fastv:FastV")
