"""A backbone whose model step costs a fixed wall time: the runner benchmarks' stand-in for a GPU model.

A GPU step leaves the host CPU free, so the step sleeps (`step_s + per_frame_s × frames`) instead of
computing: decoding in CPU workers can overlap with it, as it would beside a real accelerator. The
answer is a letter derived from the decoded pixels, so predictions depend on what was decoded and are
deterministic. Not an evaluation model: `make bench` and the runner tests build specs with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from harness.core.records import Frames, Generation, GenerationConfig, Prompt
from harness.data.samples import LETTERS


@dataclass
class FixedCost:
    step_s: float = 0.05  # cost of one model call, whatever the input
    per_frame_s: float = 0.0  # extra cost per frame (longer videos cost more, as with a real model)
    name: str = "fixed-cost"
    tokens_per_frame: int = 1

    def encode_frames(self, frames: Frames) -> torch.Tensor:
        # One token per frame: its mean RGB (the pixels must reach the model, or nothing was tested).
        pixels = np.asarray(frames.pixels, dtype=np.float32).reshape(len(frames), -1, 3)
        return torch.from_numpy(pixels.mean(axis=1, keepdims=True) if len(frames) else np.zeros((0, 1, 3), np.float32))

    def generate(self, visual_tokens: torch.Tensor, prompt: Prompt, config: GenerationConfig) -> Generation:
        start = time.perf_counter()
        time.sleep(self.step_s + self.per_frame_s * visual_tokens.shape[0])
        letter = LETTERS[int(visual_tokens.double().sum().item()) % 4]
        return Generation(text=letter, visual_tokens=int(visual_tokens.shape[0]), text_tokens=len(prompt.user.split()),
                          generated_tokens=1, timings_s={"step": time.perf_counter() - start})
