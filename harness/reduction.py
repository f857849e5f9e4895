"""Token reducers: what happens to per-frame visual tokens before they enter the LLM.

A reducer declares the hook it uses; `none` keeps every token in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from harness.records import FrameSelection, Sample
from harness.registry import Registry

Hook = Literal["none", "visual", "llm"]


class TokenReducer(Protocol):
    name: str
    hook: Hook

    def reduce(self, tokens: torch.Tensor, selection: FrameSelection, sample: Sample) -> torch.Tensor:
        """Per-frame tokens [T, M, C] (T = len(selection.indices)) in, the LLM's visual sequence [L, C] out."""
        ...


@dataclass(frozen=True)
class NoReduction:
    name: str = "none"
    hook: Hook = "none"

    def reduce(self, tokens: torch.Tensor, selection: FrameSelection, sample: Sample) -> torch.Tensor:
        return tokens.reshape(-1, tokens.shape[-1])


REDUCERS: Registry = Registry("token reducer")
REDUCERS.register("none", NoReduction)
