"""The interface every backbone (VLM) offers the pipeline.

A backbone receives decoded `Frames`; it never opens a file, picks frames or knows the task name.
Its hook points let frame selectors and token reducers stay backbone-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from harness.records import Frames, Generation, GenerationConfig, Prompt


class HookUnavailable(RuntimeError):
    """A method asked a backbone for a hook it does not offer."""


@dataclass(frozen=True)
class LlmPrune:
    """In-LLM visual token pruning (FastV): rank the visual tokens by the attention the last prompt token pays
    them at layer `layer` - 1 (mean over heads), and from layer `layer` on keep only the top
    ceil(keep_ratio · N_visual). Kept tokens keep their original positions."""

    layer: int
    keep_ratio: float

    def __post_init__(self) -> None:
        if self.layer < 1:
            raise ValueError(f"LlmPrune.layer must be >= 1 (attention is read at layer K-1), got {self.layer}")
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"LlmPrune.keep_ratio must be in (0, 1], got {self.keep_ratio}")


def require_hook(backbone: object, hook: str, method: str) -> None:
    """Raise HookUnavailable (one line) unless `backbone` lists `hook` in its `hooks`."""
    offered = getattr(backbone, "hooks", frozenset())
    if hook not in offered:
        name = getattr(backbone, "name", type(backbone).__name__)
        raise HookUnavailable(
            f"{method} needs the backbone hook {hook!r}, which backbone {name!r} does not offer "
            f"(it offers: {', '.join(sorted(offered)) or 'none'}); pick a backbone that implements it"
        )


class Backbone(Protocol):
    """Required: `encode_frames`, `generate`. Optional hooks are listed by name in `hooks`; a backbone offers a
    hook only if it implements the method/keyword below exactly (methods check with `require_hook`):

    - "embed_text": `embed_text(text: str) -> Tensor[n, C]`, LLM input embeddings of `text`.
    - "prompt_embeds": `prompt_embeds(visual_tokens [L, C], prompt) -> (embeds [1, n, C], n_visual, n_text)`.
    - "vision_attention": `vision_attention(frames) -> (received [T, M], keys [T, M, d])` on the same [T, M]
      token grid `encode_frames` returns: the mean attention each vision token receives (over heads and
      queries; SigLIP has no CLS) and the head-averaged attention keys, both at the vision layer the features
      come from, pooled to the LLM token grid with the backbone's own pooling (VisionZip).
    - "llm_prune": `generate(..., llm_prune: LlmPrune | None = None)` prunes visual tokens inside the LLM and
      reports `Generation.visual_tokens_after_llm_prune` (FastV).
    - "vision_features": `vision_features(frames) -> (pre [T, P, Cv], post [T, M, C])`, the vision encoder's patch
      features at the feature layer (before the projector) and `encode_frames`' tokens (after it). Qwen2.5-VL
      (`frames_per_group` = 2 frames per row) groups `pre` per LLM token: [T/2, M, merge², Cv].
    - "token_positions": `set_token_rows(rows: Tensor[L])` declares, for each of the L visual tokens the next
      `generate`/`prompt_embeds` receives, the flat row (t·M + m) of the last `encode_frames` output whose position
      it takes; the next `encode_frames` clears it. For backbones that place each visual token by its grid position
      (Qwen2.5-VL's M-RoPE): without it they can place only tokens that are rows themselves, so a merging reducer
      must declare where each merged token sits (DFM: its largest-weight row).
    """

    name: str
    tokens_per_frame: int  # visual tokens one frame contributes without reduction
    hooks: frozenset[str]  # optional hooks this backbone implements (see above)

    def encode_frames(self, frames: Frames) -> torch.Tensor:
        """Per-frame visual tokens in the LLM's input space (after projector and pooling): [T, M, C]."""
        ...

    def generate(self, visual_tokens: torch.Tensor, prompt: Prompt, config: GenerationConfig) -> Generation:
        """Answer `prompt` with `visual_tokens` [L, C] placed before the user text; greedy by default."""
        ...
