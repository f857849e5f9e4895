"""What a spec feeds the LLM, known before a run: frames, tokens per frame, visual tokens entering the LLM and
what in-LLM reduction leaves, from the methods' own counting (`frame_budget`, `visual_tokens`, the LlmPrune
schedule) and the backbone class's tokens per frame. This is what lets `harness models` show every method's budget
and a researcher match budgets across methods before renting a GPU."""

from __future__ import annotations

from dataclasses import dataclass

from harness.backbones import BACKBONES
from harness.core.records import LlmFuse, LlmPrune
from harness.methods.reduction import InLlmReducer
from harness.model.preflight import build_methods
from harness.model.specs import ModelSpec


@dataclass(frozen=True)
class Budget:
    frames: int  # reaching the model, on a video long enough to fill the selection
    per_frame: int | None  # tokens per frame; None when the backbone's depend on the frame size (Qwen2.5-VL)
    entering: int | None  # visual tokens entering the LLM, separators included
    in_llm: tuple[int, ...] = ()  # visual tokens after each in-LLM pruning stage, separators included
    fuse_cost: float | None = None  # FrameFusion: the mean visual fraction per LLM step it prunes to

    def __str__(self) -> str:
        per = "?" if self.per_frame is None else str(self.per_frame)
        text = f"{self.frames}f×{per} → {'varies' if self.entering is None else self.entering}"
        if self.in_llm:
            text += " → " + " → ".join(map(str, self.in_llm)) + " in LLM"
        if self.fuse_cost is not None:
            text += f", mean {self.fuse_cost * 100:g}% in LLM"
        return text


def budget(spec: ModelSpec) -> Budget | None:
    """The spec's budget, or None when its frame count or token count depends on the video (fps, DKS + DFM)."""
    selector, reducer = build_methods(spec)
    backbone = BACKBONES.get(spec.backbone.name)
    framing = selector.frame_budget(backbone.tokens_per_frame_for(**spec.backbone.args))
    if framing is None:
        return None
    frames, per_frame = framing
    tokens = None if per_frame is None else reducer.visual_tokens(frames, per_frame)
    if per_frame is not None and tokens is None:
        return None
    separators = backbone.separator_tokens if tokens else 0
    request = reducer.request() if isinstance(reducer, InLlmReducer) else None
    in_llm = () if tokens is None or not isinstance(request, LlmPrune) else tuple(
        n + separators for n in request.counts(tokens))
    return Budget(frames, per_frame, None if tokens is None else tokens + separators, in_llm,
                  request.cost if isinstance(request, LlmFuse) else None)
