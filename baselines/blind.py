"""Blind — no visual tokens reach the LLM: the model answers from the question and options alone.

lmms-eval's "no visual" decontamination setting for VideoMME (task `videomme_no_visual`,
lmms_eval/tasks/videomme/no_visual/: `doc_to_visual` returns []): what a model scores from text priors and
memorised answers. On the needle task it should sit at chance (25%): whatever a spec scores above its blind
score is what the video contributed.
Nothing is spliced into the chat's video slot, not even LLaVA-OV's image_newline, and Qwen2.5-VL places the text
as if there were no video; the template's text around the slot stays (Qwen2.5-VL's vision start/end markers),
where lmms-eval's prompt has no video slot at all. The frames are still decoded and encoded (the pipeline always
calls `encode_frames`), so the cost columns other than tokens are not a text-only model's.
Hook: none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from harness.core.records import EncodedVideo, VisualSequence
from harness.methods.reduction import ReductionContext


@dataclass(frozen=True)
class Blind:
    name: ClassVar[str] = "blind"
    requires: ClassVar[frozenset[str]] = frozenset()
    emits_rows: ClassVar[bool] = True  # an empty selection of encoded rows: nothing for a grid backbone to place

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        return 0

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        return VisualSequence.select(encoded, torch.empty(0, dtype=torch.long))
