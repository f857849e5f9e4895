"""FastV — in-LLM visual token pruning (Chen et al., ECCV'24, arXiv 2403.06764).

At layer K − 1, the attention the last prompt token pays each visual token (mean over heads) ranks them;
from layer K on only the top ⌈(1 − R)·N⌉ visual tokens remain (dropped from the hidden states and the KV
cache, original positions kept). All of the video's frames are ranked jointly, as the video papers apply it.
Official defaults (README): K = 2, R = 50%. Tokens entering the LLM are unchanged; the per-sample field
`visual_tokens_after_llm_prune` records what remains from layer K on.
Hook: "llm_prune" on the backbone (attention recomputed for the last query at layer K − 1); the request travels
in `VisualSequence.llm_prune`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.core.records import EncodedVideo, LlmPrune, VisualSequence
from harness.methods.reduction import ReductionContext


@dataclass(frozen=True)
class FastV:
    layer: int = 2  # K
    ratio: float = 0.5  # R, the fraction of visual tokens pruned from layer K on
    name: ClassVar[str] = "fastv"
    requires: ClassVar[frozenset[str]] = frozenset({"llm_prune"})
    emits_rows: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self.request()  # raises on a bad K or R

    def request(self) -> LlmPrune:
        return LlmPrune.fastv(self.layer, 1.0 - self.ratio)

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        return frames * per_frame  # every token enters; request().counts says what remains from layer K on

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        """Every token enters the LLM; the pruning request rides along for `generate`."""
        return VisualSequence.whole(encoded, self.request())
