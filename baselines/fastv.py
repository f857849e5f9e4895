"""FastV — in-LLM visual token pruning (Chen et al., ECCV'24, arXiv 2403.06764).

At layer K − 1, the attention the last prompt token pays each visual token (mean over heads) ranks them;
from layer K on only the top ⌈(1 − R)·N⌉ visual tokens remain (dropped from the hidden states and the KV
cache, original positions kept). All of the video's frames are ranked jointly, as the video papers apply it.
Official defaults (README): K = 2, R = 50%. Tokens entering the LLM are unchanged; the per-sample field
`visual_tokens_after_llm_prune` records what remains from layer K on.
Hook: "llm_prune" on the backbone (attention recomputed for the last query at layer K − 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.core.records import LlmPrune
from harness.methods.hooks import require_hook
from harness.methods.reduction import ReductionContext


@dataclass(frozen=True)
class FastV:
    layer: int = 2  # K
    ratio: float = 0.5  # R, the fraction of visual tokens pruned from layer K on
    name: str = "fastv"
    hook: str = "llm_prune"

    def __post_init__(self) -> None:
        LlmPrune(layer=self.layer, keep_ratio=1.0 - self.ratio)  # raises on a bad K or R

    @property
    def llm_prune(self) -> LlmPrune:
        """What the pipeline hands `backbone.generate(..., llm_prune=...)`."""
        return LlmPrune(layer=self.layer, keep_ratio=1.0 - self.ratio)

    def reduce(self, tokens: torch.Tensor, ctx: ReductionContext) -> torch.Tensor:
        require_hook(ctx.backbone, "llm_prune", "FastV")
        return tokens.reshape(-1, tokens.shape[-1])
