"""The interface every backbone (VLM) offers the pipeline.

A backbone receives decoded `Frames`; it never opens a file, picks frames or knows the task name.
Its hook points let frame selectors and token reducers stay backbone-agnostic.
"""

from __future__ import annotations

from typing import Protocol

import torch

from harness.records import Frames, Generation, GenerationConfig, Prompt


class HookUnavailable(RuntimeError):
    """A method asked a backbone for a hook it does not offer."""


class Backbone(Protocol):
    name: str
    tokens_per_frame: int  # visual tokens one frame contributes without reduction

    def encode_frames(self, frames: Frames) -> torch.Tensor:
        """Per-frame visual tokens in the LLM's input space (after projector and pooling): [T, M, C]."""
        ...

    def generate(self, visual_tokens: torch.Tensor, prompt: Prompt, config: GenerationConfig) -> Generation:
        """Answer `prompt` with `visual_tokens` [L, C] placed before the user text; greedy by default."""
        ...
