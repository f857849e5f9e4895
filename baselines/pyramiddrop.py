"""PyramidDrop — visual redundancy reduction in stages inside the LLM (Xing et al., CVPR 2025, arXiv 2410.17247;
official code Cooperx521/PyramidDrop).

The LLM is cut into stages at `layers`; at each boundary layer L the visual tokens still present are ranked by the
attention the last prompt token pays them in layer L itself (its input layernorm, q/k projections and RoPE on the
hidden states entering it, softmax over all keys, mean over heads: the paper's "lightweight attention", one query
row) and only `keep_ratios[s]` of the visual tokens that entered the LLM go on, int()-rounded, in their original
order. FastV is the one-stage case ranked one layer earlier.
Official defaults (every eval script, `--layer_list '[8,16,24]' --image_token_ratio_list "[0.5,0.25,0.125]"`, the
ratios read as fractions of the original count in llava/model/modeling_llama_pdrop.py `pdrop_rank_drop`): stages
after layers 8, 16 and 24 of LLaVA-1.5's 32, λ = 0.5 per stage. The code ships for LLaMA only; on Qwen2's 28 layers
the 7B specs spread the stages evenly as the paper's ablation does (7, 14, 21; our extrapolation).
Deviation: the official code renumbers positions contiguously after each drop (1-D RoPE); kept tokens here keep
their original positions, as FastV's do, which is also the only definition on Qwen2.5-VL's M-RoPE. Its truncation
of the sequence to 2,048 tokens after each drop is not reproduced.
Hook: "llm_prune" on the backbone; the request travels in `VisualSequence.llm_prune`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from harness.core.records import EncodedVideo, LlmPrune, VisualSequence
from harness.methods.reduction import ReductionContext


@dataclass(frozen=True)
class PyramidDrop:
    layers: tuple[int, ...] = (8, 16, 24)  # stage boundaries (LLaVA-1.5, 32 layers)
    keep_ratios: tuple[float, ...] = (0.5, 0.25, 0.125)  # of the visual tokens entering the LLM, per stage
    name: ClassVar[str] = "pyramiddrop"
    requires: ClassVar[frozenset[str]] = frozenset({"llm_prune"})
    emits_rows: ClassVar[bool] = True

    def __post_init__(self) -> None:
        try:
            self.request()
        except ValueError as exc:
            raise ValueError(f"pyramiddrop: {exc}") from None

    def request(self) -> LlmPrune:
        return LlmPrune(tuple(self.layers), tuple(self.keep_ratios), rank="own", rounding="floor")

    def visual_tokens(self, frames: int, per_frame: int) -> int:
        return frames * per_frame  # all enter the LLM; request().counts(n) is what each stage keeps

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        return VisualSequence.whole(encoded, self.request())
