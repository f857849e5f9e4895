"""A backbone whose model step costs a fixed wall time: the runner benchmarks' stand-in for a GPU model.

A GPU step leaves the host CPU free, so the step sleeps (`step_s + per_frame_s × visual tokens`) instead of
computing: decoding in CPU workers can overlap with it, as it would beside a real accelerator. Each frame is one
token, its mean RGB, and the answer is a letter derived from the visual tokens, so predictions depend on what
was decoded and are deterministic. Not an evaluation model: `make bench` and the runner tests build specs with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from harness.backbones.base import Placement, bind_arguments
from harness.core.records import LETTERS, EncodedVideo, Frames, Generation, GenerationConfig, Prompt, VisualSequence


@dataclass
class FixedCost:
    step_s: float = 0.05  # cost of one model call, whatever the input
    per_frame_s: float = 0.0  # extra cost per frame (longer videos cost more, as with a real model)
    name: str = "fixed-cost"
    tokens_per_frame: int = 1
    hooks: ClassVar[frozenset[str]] = frozenset()
    placement: ClassVar[Placement] = "sequential"
    separator_tokens: ClassVar[int] = 0

    @classmethod
    def load(cls, **args: Any) -> FixedCost:
        cls.preflight(**args)
        return cls(**args)

    @classmethod
    def preflight(cls, **args: Any) -> None:
        bind_arguments("fixed-cost", cls, args)

    @classmethod
    def tokens_per_frame_for(cls, **args: Any) -> int:
        return int(bind_arguments("fixed-cost", cls, args)["tokens_per_frame"])

    @classmethod
    def checkpoint_dir(cls, **args: Any) -> None:  # no weights
        bind_arguments("fixed-cost", cls, args)

    def encode_frames(self, frames: Frames) -> EncodedVideo:
        # One token per frame: its mean RGB (the pixels must reach the model, or nothing was tested).
        pixels = np.asarray(frames.pixels, dtype=np.float32).reshape(len(frames), -1, 3)
        tokens = pixels.mean(axis=1, keepdims=True) if len(frames) else np.zeros((0, 1, 3), np.float32)
        return EncodedVideo(torch.from_numpy(tokens), tuple(frames.timestamps_s))

    def generate(self, visual: VisualSequence, prompt: Prompt, config: GenerationConfig) -> Generation:
        start = time.perf_counter()
        time.sleep(self.step_s + self.per_frame_s * len(visual))
        letter = LETTERS[int(visual.tokens.double().sum().item()) % 4]
        return Generation(text=letter, visual_tokens=len(visual), text_tokens=len(prompt.user.split()),
                          generated_tokens=1, timings_s={"step": time.perf_counter() - start})
