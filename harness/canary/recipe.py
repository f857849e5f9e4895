"""The canary recipe's hyper-parameters in one place, and the training log (JSON lines)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.canary.model import Widths
from harness.data.needle.questions import CATEGORIES

RECIPE_VERSION = 5  # bump when the recipe's output changes for the same arguments


@dataclass(frozen=True)
class Recipe:
    seed: int = 13_013  # weights, batches and banks; disjoint from the needle task (seed 0) and its exam
    heldout_seed: int = 13_999  # held-out clips
    threads: int = 2  # torch.set_num_threads: results depend on it
    widths: Widths = field(default_factory=Widths)
    # stage 1: vision tower + projector classify each frame's label (71 labels + haystack) against the LLM's
    # frozen label-token embeddings (cosine × scale), per pooled token and per frame mean: classification and
    # projector → label-embedding alignment in one loss
    bank_videos: int = 96  # haystack scenes in the frame bank
    bank_frames: int = 96  # frames per scene (random times in [0, 600)); the longest curriculum clip draws 64
    bank_needles: int = 36_000  # needle frames, 2 per event (fresh scene, random placement and scale each), in the
    # task's category proportions (vision.task_labels)
    stage1_steps: int = 5_000
    stage1_batch: int = 64  # half needle frames, half haystack frames
    stage1_lr: float = 1e-3  # 3e-3 (recipe 2): word needles 15% after 1,500 steps, 1e-3: 33%
    stage1_scale: float = 16.0  # cosine logit scale
    stage1_align: float = 1.0  # weight of (1 - cosine(token, label embedding)), every pooled token
    # stage 2: the LLM alone (vision frozen, its tokens cached) answers by option letter: logits of the letters'
    # first tokens at the last prompt position (decoding.py's option_letter step). Curriculum of
    # (frames per clip, steps); 0 frames = text-only warm-up (the label's own embedding stands for the frame).
    curriculum: tuple[tuple[int, int], ...] = (
        (0, 300), (1, 600), (2, 600), (4, 800), (8, 1400), (16, 700), (32, 500), (64, 600))
    stage2_batch: int = 16
    stage2_lr: float = 3e-3
    # auxiliary loss: at each option's label token, "yes"/"no" = was this label shown (a dense, easy signal that
    # gets the matching off the plateau the plain letter loss sits on)
    option_aux: float = 1.0
    double_needle: float = 0.3  # chance the needle spans two adjacent sampled frames (needles last 2 frames)
    log_every: int = 25
    heldout_clips: int = 64  # per condition (8 frames, present / absent)

    def scaled(self, factor: float) -> Recipe:
        """Every step count and bank size × factor (at least 1, banks at least a few): `--steps-scale`."""
        if factor == 1:
            return self

        def n(x: int, low: int = 1) -> int:
            return max(low, round(x * factor))

        return replace(
            self, stage1_steps=n(self.stage1_steps), bank_videos=n(self.bank_videos, 4),
            bank_needles=n(self.bank_needles, min_bank_needles()), curriculum=tuple((f, n(s)) for f, s in self.curriculum),
            heldout_clips=n(self.heldout_clips, 8),
        )


def min_bank_needles() -> int:
    """The fewest needle frames a bank can hold with every label in the task's proportions, 2 frames an event."""
    return 2 * len(CATEGORIES) * max(map(len, CATEGORIES.values()))


class Log:
    """The learning curve: one JSON object per line, each with the seconds since the recipe started."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = time.perf_counter()
        path.write_text("")

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def write(self, **record: Any) -> None:
        record = {"elapsed_s": round(self.elapsed(), 2), **record}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
