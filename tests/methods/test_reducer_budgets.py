"""Every registered token reducer states its budget before a run: `visual_tokens(frames, per_frame)` equals what
`reduce` emits, on inputs of several shapes (the spec listing and budget matching rely on it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.core.records import EncodedVideo, Frames, FrameSelection, Sample
from harness.methods.reduction import REDUCERS, ReductionContext

SHAPES = [(1, 16), (4, 16), (5, 9), (8, 4), (16, 16)]


class RandomHooks:
    """Just enough of a backbone for the hooks reducers call: seeded random attention and keys on the token grid."""

    name = "random-hooks"
    hooks = frozenset({"vision_attention", "llm_prune", "embed_text"})

    def __init__(self, rows: int, per_frame: int) -> None:
        self.rows, self.per_frame = rows, per_frame

    def vision_attention(self, frames):
        g = torch.Generator().manual_seed(1)
        return (torch.rand(self.rows, self.per_frame, generator=g),
                torch.randn(self.rows, self.per_frame, 8, generator=g))


def context(rows: int, per_frame: int) -> ReductionContext:
    frames = Frames(tuple(range(rows)), tuple(float(t) for t in range(rows)), np.zeros((rows, 2, 2, 3), np.uint8))
    sample = Sample(id="s", task="t", video="v.mp4", question="q?", options=("a", "b"), answer=0)
    return ReductionContext(sample, FrameSelection("uniform", frames.indices), frames, RandomHooks(rows, per_frame))


@pytest.mark.parametrize("name", [n for n in REDUCERS.names() if n != "dfm"])  # DFM's count depends on its keyframes
@pytest.mark.parametrize("shape", SHAPES)
def test_the_declared_budget_is_what_reduce_emits(name, shape):
    rows, per_frame = shape
    reducer = REDUCERS.get(name)()
    encoded = EncodedVideo(torch.randn(rows, per_frame, 8, generator=torch.Generator().manual_seed(rows * per_frame)),
                           tuple(float(t) for t in range(rows)))
    visual = reducer.reduce(encoded, context(rows, per_frame))
    assert reducer.visual_tokens(rows, per_frame) == len(visual)
    if reducer.emits_rows:
        assert visual.rows is not None and visual.source is encoded


def test_dfm_says_its_budget_depends_on_the_video():
    assert REDUCERS.get("dfm")().visual_tokens(16, 16) is None
