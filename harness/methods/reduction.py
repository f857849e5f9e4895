"""Token reducers: what happens to the encoded visual tokens before (or, through a request, inside) the LLM.

A reducer maps an `EncodedVideo` to the `VisualSequence` the LLM reads. It declares, as class attributes, the
backbone hooks it calls (`requires`, in harness.methods.hooks' vocabulary) and whether every token it emits is
placed at a declared encoded row (`emits_rows`): backbones that place tokens by grid position (Qwen2.5-VL) can
take only such reducers. The preflight checks both against the backbone class before a run starts.
`none` keeps every token in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from harness.core.records import EncodedVideo, Frames, FrameSelection, LlmFuse, LlmPrune, Sample, VisualSequence
from harness.core.registry import Registry
from harness.video.streaming import FrameSource


@dataclass(frozen=True, eq=False)
class ReductionContext:
    """What a reducer may consult besides the tokens: the question, the chosen frames and the backbone, whose
    methods it may call only for the hooks it `requires` (or checks in `backbone.hooks` first)."""

    sample: Sample
    selection: FrameSelection
    frames: Frames  # the frames whose tokens are being reduced, in time order
    backbone: Any  # a harness.backbones.base.Backbone


class TokenReducer(Protocol):
    name: ClassVar[str]
    requires: ClassVar[frozenset[str]]
    emits_rows: ClassVar[bool]

    def visual_tokens(self, frames: int, per_frame: int) -> int | None:
        """Exactly how many tokens `reduce` emits for `frames` encoded rows of `per_frame` tokens each, from the
        arguments alone (budgets are known before a run); None when the count depends on the video (DFM)."""
        ...

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        """Encoded tokens [T, M, C] (T rows for the frames of ctx.frames) in, the LLM's visual sequence out."""
        ...


@runtime_checkable
class InLlmReducer(Protocol):
    """A reducer whose tokens are reduced inside the LLM too: `request()` is what rides in VisualSequence.llm_prune
    (None when this configuration asks for nothing), so budgets are known before a run."""

    def request(self) -> LlmPrune | LlmFuse | None: ...


@runtime_checkable
class StreamingReducer(Protocol):
    """A reducer that reads its frames itself, a chunk at a time (paired with a streaming selector)."""

    def reduce_stream(self, source: FrameSource, ctx: ReductionContext) -> VisualSequence: ...


@dataclass(frozen=True)
class NoReduction:
    name: ClassVar[str] = "none"
    requires: ClassVar[frozenset[str]] = frozenset()
    emits_rows: ClassVar[bool] = True

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        return VisualSequence.whole(encoded)

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        return frames * per_frame


REDUCERS: Registry = Registry("token reducer")
REDUCERS.register("none", NoReduction)
REDUCERS.register("dfm", "harness.vilamp.reducer:DFMReducer")  # ViLAMP differential feature merging
REDUCERS.register("visionzip", "baselines.visionzip:VisionZip")
REDUCERS.register("tome", "baselines.tome:ToMe")
REDUCERS.register("dycoke", "baselines.dycoke:DyCoke")
REDUCERS.register("fastv", "baselines.fastv:FastV")
REDUCERS.register("blind", "baselines.blind:Blind")  # no visual tokens: the text-only floor
REDUCERS.register("divprune", "baselines.divprune:DivPrune")  # max–min diverse token subset
REDUCERS.register("fastvid", "baselines.fastvid:FastVID")  # DySeg segments + density-based STPrune
REDUCERS.register("flashvid", "baselines.flashvid:FlashVID")  # attention+diversity per frame, tree merging across
REDUCERS.register("vidcom2", "baselines.vidcom2:VidCom2")  # per-frame budgets from frame uniqueness
REDUCERS.register("pyramiddrop", "baselines.pyramiddrop:PyramidDrop")  # staged in-LLM dropping
REDUCERS.register("framefusion", "baselines.framefusion:FrameFusion")  # in-LLM adjacent merging + pruning
