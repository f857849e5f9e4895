"""FrameFusion — similarity-based merging of temporally adjacent visual tokens, then importance pruning, in the
first LLM layers (Fu et al., ICCV 2025, arXiv 2501.01986; official code thu-nics/FrameFusion, `apply_framefusion`).

Before layer 0 and after each layer's attention, a visual token whose hidden state is at least S cosine-similar to
the surviving token at the same patch position in an earlier frame folds into it (plain mean); merging repeats
layer after layer until the share merged in one step falls below `min_ratio`; then, in the next layer, the last
prompt token's attention prunes the least important tokens so that the visual tokens averaged over the LLM's layers
are `cost` of those entering (harness/backbones/framefusion.py has the exact rules and the deviations).
Official defaults (`FrameFusion.__init__`, README and example_llava.py): cost 0.3, similarity_lower_bound 0.6,
ratio_lower_bound 0.1 (example_qwen2vl.py: similarity 0.5). All tokens enter the LLM; what remains after the
prune depends on how many merged, so the spec listing shows the tokens entering and `cost`, the mean per layer.
On a 2-layer LLM (the tiny and canary backbones) cost 0.3 cannot be met once layer 0 has seen most tokens: the
prune then keeps one token; their specs use a cost the depth allows.
Hook: "llm_fuse" on the backbone (the patch position of each visual token comes from its encoded row); the request
travels in `VisualSequence.llm_prune`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.core.records import EncodedVideo, LlmFuse, VisualSequence
from harness.methods.reduction import ReductionContext


@dataclass(frozen=True)
class FrameFusion:
    cost: float = 0.3  # mean visual-token fraction over the LLM's layers
    similarity: float = 0.6  # S, the merge threshold
    min_ratio: float = 0.1  # merging stops after a step that merges less than this share
    name: ClassVar[str] = "framefusion"
    requires: ClassVar[frozenset[str]] = frozenset({"llm_fuse"})
    emits_rows: ClassVar[bool] = True

    def __post_init__(self) -> None:
        try:
            self.request()
        except ValueError as exc:
            raise ValueError(f"framefusion: {exc}") from None

    def request(self) -> LlmFuse:
        return LlmFuse(self.cost, self.similarity, self.min_ratio)

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        return frames * per_frame  # all enter the LLM; merging and pruning happen inside it

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        return VisualSequence.whole(encoded, self.request())
