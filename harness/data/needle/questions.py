"""The questions of a needle dataset: which kind, length and gold letter each gets, its options, its needle
events (label, start frame) and its annotation row."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations

import numpy as np
import pyarrow as pa

from harness.core.records import LETTERS
from harness.data.needle.config import NeedleConfig

OPTIONS = 4  # every question offers four options, A-D
RETRIEVAL_QUESTION = "Which of these appeared in the video?"

COLOURS = {
    "red": (235, 20, 20),
    "green": (0, 200, 40),
    "blue": (25, 60, 240),
    "yellow": (255, 225, 0),
    "magenta": (230, 0, 210),
    "cyan": (0, 215, 235),
    "orange": (255, 130, 0),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "hexagon")
WORDS = ("APPLE", "TIGER", "CLOUD", "PIANO", "HOUSE", "LEMON", "ROBOT", "ZEBRA", "TRAIN", "CHAIR", "GLOBE", "SNAKE")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "shape": tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES),
    "digit": tuple(f"digit {d}" for d in range(10)),
    "word": tuple(f"word {w}" for w in WORDS),
}

SCHEMA = pa.schema(
    [
        ("question_id", pa.string()),
        ("video", pa.string()),  # relative to the dataset root
        ("question", pa.string()),
        ("options", pa.list_(pa.string())),  # 4 option texts, no letter prefixes
        ("answer", pa.string()),  # gold letter A-D
        ("kind", pa.string()),
        ("num_frames", pa.int64()),
        ("fps", pa.float64()),
        ("duration", pa.float64()),
        ("depth", pa.float64()),  # needle start / (num_frames - needle_frames); mean over events unless retrieval
        ("length_bucket", pa.string()),
        ("needle_frames", pa.list_(pa.int64())),  # every frame where a needle is visible
        ("needle_times", pa.list_(pa.float64())),  # start time (s) of each event, in time order
        ("needle_events", pa.list_(pa.list_(pa.int64()))),  # [start, end) frame range of each event
        ("evidence_spans", pa.list_(pa.list_(pa.float64()))),  # [start, end) seconds of each event
        ("depth_bucket", pa.string()),  # retrieval depth as text; "spread" for multi-needle kinds
        ("needle_labels", pa.list_(pa.string())),  # label of each event
    ]
)

Events = list[tuple[str, int]]  # (label, start frame) of each needle event, in time order


@dataclass(frozen=True)
class QuestionSpec:
    index: int  # position in the dataset; seeds the question
    kind: str
    length: int
    cell_index: int
    gold: int  # 0-based gold option
    depth: float  # retrieval depth; unused by the other kinds


def plan(config: NeedleConfig) -> list[QuestionSpec]:
    """Every question's kind, length and gold letter, drawn from the master rng so letters are balanced."""
    rng = np.random.default_rng(config.seed)
    specs: list[QuestionSpec] = []
    retrieval_count = 0
    for kind in config.kinds:
        for length in config.lengths:
            golds = rng.permutation(np.resize(np.arange(OPTIONS), config.per_cell))
            for i, gold in enumerate(golds):
                depth = 0.0
                if kind == "retrieval":  # cycled over the whole kind, not per cell, so depths stay balanced
                    depth = config.depths[retrieval_count % len(config.depths)]
                    retrieval_count += 1
                specs.append(QuestionSpec(len(specs), kind, length, i, int(gold), depth))
    return specs


def _random_category(rng: np.random.Generator) -> tuple[str, ...]:
    return list(CATEGORIES.values())[rng.integers(len(CATEGORIES))]  # uniform over categories, not labels


def _random_label(rng: np.random.Generator) -> str:
    pool = _random_category(rng)
    return pool[rng.integers(len(pool))]


def _with_gold(correct: str, distractors: list[str], gold: int) -> list[str]:
    options = list(distractors)
    options.insert(gold, correct)
    return options


def _spread_starts(length: int, needle_frames: int, k: int, rng: np.random.Generator) -> list[int]:
    """One event start per k-th of the video, jittered around the segment centre, never touching a neighbour."""
    edges = [round(j * length / k) for j in range(k + 1)]
    starts = []
    for a, b in zip(edges, edges[1:]):
        slack = b - a - needle_frames
        start = round(a + slack / 2 + rng.uniform(-slack / 4, slack / 4))
        starts.append(min(max(start, a + 1), b - needle_frames))  # >= 1 haystack frame before each event
    return starts


def question(spec: QuestionSpec, config: NeedleConfig, rng: np.random.Generator) -> tuple[dict, Events]:
    """The annotation row and the needle events (label, start frame) of one question."""
    n, nf = spec.length, config.needle_frames
    span = n - nf  # last possible start frame
    if spec.kind == "retrieval":
        pool = _random_category(rng)
        picked = [pool[i] for i in rng.choice(len(pool), size=OPTIONS, replace=False)]  # same category: no format hint
        events = [(picked[0], round(spec.depth * span))]
        question = RETRIEVAL_QUESTION
        options = _with_gold(picked[0], picked[1:], spec.gold)
        depth = spec.depth
    elif spec.kind == "ordering":
        labels: list[str] = []
        while len(labels) < 3:
            label = _random_label(rng)
            if label not in labels:
                labels.append(label)
        starts = _spread_starts(n, nf, 3, rng)
        events = list(zip(labels, starts))
        wrong = list(permutations(labels))[1:]  # the identity permutation is the true order
        distractors = [", ".join(wrong[i]) for i in rng.choice(len(wrong), size=3, replace=False)]
        question = "In which order did these appear in the video?"
        options = _with_gold(", ".join(labels), distractors, spec.gold)
        depth = float(np.mean([s / span for s in starts]))
    else:
        label = _random_label(rng)
        starts = _spread_starts(n, nf, spec.gold + 1, rng)
        events = [(label, s) for s in starts]
        question = f"How many times did the {label} appear in the video?"
        options = ["1", "2", "3", "4"]
        depth = float(np.mean([s / span for s in starts]))
    question_id = f"needle_{spec.kind}_{n}_{spec.cell_index}"
    row = {
        "question_id": question_id,
        "video": f"videos/{question_id}.mp4",
        "question": question,
        "options": options,
        "answer": LETTERS[spec.gold],
        "kind": spec.kind,
        "num_frames": n,
        "fps": float(config.fps),
        "duration": n / config.fps,
        "depth": float(depth),
        "length_bucket": str(n),
        "needle_frames": sorted(t for _, s in events for t in range(s, s + nf)),
        "needle_times": [s / config.fps for _, s in events],
        "needle_events": [[s, s + nf] for _, s in events],
        "evidence_spans": [[s / config.fps, (s + nf) / config.fps] for _, s in events],
        "depth_bucket": f"{depth:.1f}" if spec.kind == "retrieval" else "spread",
        "needle_labels": [label for label, _ in events],
    }
    return row, events
