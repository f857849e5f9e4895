"""Held-out evaluation on freshly rendered clips (own seed), through the harness's own LLaVA-OV backbone path:
`encode_frames` → `VisualSequence.whole` → `generate` with the option letters as choices (answer: option_letter)."""

from __future__ import annotations

import numpy as np
import torch

from harness.backbones.llava_ov import LlavaOvBackbone
from harness.canary.clips import (
    MAX_TIME,
    haystack_video,
    needle_events,
    pixels,
    prompt,
    retrieval_question,
    through_codec,
    with_needle,
)
from harness.canary.model import LABELS
from harness.canary.vision import frame_accuracy
from harness.core.records import LETTERS, Frames, GenerationConfig, VisualSequence
from harness.data.needle.questions import CATEGORIES, OPTIONS


def clip_accuracy(backbone: LlavaOvBackbone, rng: np.random.Generator, clips: int, frames: int, present: bool) -> float:
    """Retrieval accuracy on `clips` clips of `frames` uniformly spaced frames of a fresh scene (a video of a
    random length in [frames, 512]), the needle drawn over one of them when `present`."""
    config = GenerationConfig(max_new_tokens=1, choices=tuple(LETTERS[:OPTIONS]))
    right = 0
    for _ in range(clips):
        q = retrieval_question(rng)
        length = int(rng.integers(max(frames, 32), 513))
        times = np.linspace(0, length - 1, frames).round().astype(int)
        video = haystack_video(rng, times)
        if present:
            video = with_needle(rng, video, int(rng.integers(frames)), q.label)
        video = through_codec(video)
        encoded = backbone.encode_frames(Frames(tuple(times.tolist()), tuple(float(t) for t in times), video))
        answer = backbone.generate(VisualSequence.whole(encoded), prompt(q), config).text.strip()
        right += answer == LETTERS[q.gold]
    return right / clips


def evaluate(model, processor, classes: torch.Tensor, recipe, frame_counts: tuple[int, ...] = (8,)) -> dict:
    rng = np.random.default_rng([recipe.heldout_seed, 0])
    labels = np.resize(np.arange(len(LABELS)), max(2 * len(LABELS), recipe.heldout_clips * 2))
    needles = pixels(processor, needle_events(rng, [LABELS[i] for i in labels]))
    labels = labels.repeat(2)
    hay = pixels(processor, np.concatenate([through_codec(haystack_video(rng, rng.choice(MAX_TIME, 8, replace=False)))
                                            for _ in range(max(4, recipe.heldout_clips // 8))]))
    none = torch.full((len(hay),), len(LABELS))
    results = {
        "frame_needle_acc": frame_accuracy(model, classes, needles, torch.as_tensor(labels), recipe.stage1_scale),
        "frame_haystack_acc": frame_accuracy(model, classes, hay, none, recipe.stage1_scale),
    }
    for category, pool in CATEGORIES.items():  # the questions draw categories uniformly: each matters a third
        rows = np.flatnonzero(np.isin(labels, [LABELS.index(label) for label in pool]))
        results[f"frame_{category}_acc"] = frame_accuracy(model, classes, needles[rows], torch.as_tensor(labels[rows]),
                                                          recipe.stage1_scale)
    backbone = LlavaOvBackbone(model, processor, "canary")
    for frames in frame_counts:
        for present in (True, False):
            key = f"retrieval_{frames}f_{'present' if present else 'absent'}"
            results[key] = clip_accuracy(backbone, np.random.default_rng([recipe.heldout_seed, frames, present]),
                                         recipe.heldout_clips, frames, present)
    return {k: round(v, 4) for k, v in results.items()}
