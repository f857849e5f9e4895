"""Training and held-out material drawn with the needle task's own renderer and question text: haystack frames of
drifting scenes, needle frames (a label's overlay over a haystack frame), and retrieval questions with their
options, rendered through the task's prompt profile."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from harness.core.records import Prompt, Sample
from harness.data.needle.config import NeedleConfig
from harness.data.needle.questions import OPTIONS, RETRIEVAL_QUESTION, _random_category, _with_gold
from harness.data.needle.render import _Haystack, _overlay, encode_video
from harness.data.tasks import get_task
from harness.scoring.prompts import render
from harness.video.reader import read_frames

SIZE = NeedleConfig().size  # (width, height) the task renders
MAX_TIME = 600  # haystack frames are drawn from frame numbers [0, MAX_TIME): the task's videos are <= 512 frames


def _uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)  # as write_video quantises a frame


def haystack_video(rng: np.random.Generator, times: np.ndarray) -> np.ndarray:
    """One drifting scene at the given frame numbers: uint8 [T, H, W, 3]."""
    scene = _Haystack(rng, *SIZE)
    return np.stack([_uint8(scene.frame(int(t))) for t in times])


def needle_frame(rng: np.random.Generator, label: str) -> np.ndarray:
    """`label` drawn over a frame of a fresh scene at a random time: uint8 [H, W, 3]."""
    scene = _Haystack(rng, *SIZE)
    return _uint8(_overlay(label, *SIZE, rng).over(scene.frame(int(rng.integers(MAX_TIME)))))


def with_needle(rng: np.random.Generator, frames: np.ndarray, at: int, label: str) -> np.ndarray:
    """`frames` with `label`'s overlay (one random placement) drawn over frame `at`."""
    out = frames.copy()
    out[at] = _uint8(_overlay(label, *SIZE, rng).over(frames[at].astype(np.float32)))
    return out


def through_codec(frames: np.ndarray) -> np.ndarray:
    """uint8 frames [N, H, W, 3] after the round trip every task video makes: encoded as the needle task encodes
    (x264 CRF 18, yuv420p: chroma at half resolution), decoded by the harness's reader. Recipe 3 trained on raw
    frames recognised 97.9% of raw held-out needles but 88% of those decoded from the exam's videos."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        encode_video(path, iter(frames), NeedleConfig())
        return read_frames(str(path), range(len(frames))).pixels


def needle_events(rng: np.random.Generator, labels: Sequence[str]) -> np.ndarray:
    """Needle frames [2·len(labels), H, W, 3] in the task's context: each label over two consecutive frames of a
    fresh scene (one overlay, as a needle event lasts), after the frame before it, encoded and decoded together
    (the codec sees the needle appear, as in a task video); labels[i]'s frames are rows 2i and 2i + 1."""
    clips = []
    for label in labels:
        scene, t = _Haystack(rng, *SIZE), int(rng.integers(1, MAX_TIME - 1))
        overlay = _overlay(label, *SIZE, rng)
        clips += [_uint8(scene.frame(t - 1)), *(_uint8(overlay.over(scene.frame(u))) for u in (t, t + 1))]
    decoded = through_codec(np.stack(clips))
    return np.delete(decoded, np.s_[:: 3], axis=0)


def pixels(processor, frames: np.ndarray) -> torch.Tensor:
    """The video processor's output for uint8 frames [N, H, W, 3]: float [N, 3, S, S]."""
    batch = processor.video_processor(videos=[frames], input_data_format="channels_last", return_tensors="pt")
    return batch["pixel_values_videos"][0]


@dataclass(frozen=True)
class Question:
    label: str  # the needle shown
    options: tuple[str, ...]  # four labels of one category, the needle's among them
    gold: int


def retrieval_question(rng: np.random.Generator) -> Question:
    """As the task draws a retrieval question (questions.question): a uniform category, four of its labels, and
    here a uniform gold slot (the task's comes from its balanced plan)."""
    pool = _random_category(rng)
    picked = [pool[i] for i in rng.choice(len(pool), size=OPTIONS, replace=False)]
    gold = int(rng.integers(OPTIONS))
    return Question(picked[0], tuple(_with_gold(picked[0], picked[1:], gold)), gold)


@cache
def _profile():
    task = get_task("needle")
    return task.prompt(), task.default_prompt


def prompt(question: Question) -> Prompt:
    """The needle task's default prompt for a retrieval question."""
    profile, name = _profile()
    sample = Sample(id="canary", task="needle", video="", question=RETRIEVAL_QUESTION, options=question.options,
                    answer=question.gold)
    return render(profile, sample, name)
