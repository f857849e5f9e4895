"""ViLAMP through the pipeline: streaming in bounded chunks, streaming = in-memory, needle task end to end on Ray."""

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from harness.backbones import BACKBONES
from harness.core.records import EncodedVideo, Frames, FrameSelection, Sample
from harness.core.status import ANSWERED
from harness.evaluate import EvalRequest, evaluate
from harness.methods.reduction import ReductionContext
from harness.run.config import RunnerConfig
from harness.video.streaming import metadata_frames
from harness.vilamp import vilamp_visual_tokens
from harness.vilamp.reducer import DFMReducer
from harness.vilamp.selector import DKSSelector, StreamingDKS


def pixels_of(index: int) -> np.ndarray:
    return np.random.default_rng(index).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@dataclass
class CountingSource:
    """Synthetic frames, deterministic per frame number; records the largest read."""

    largest: int = 0
    reads: list[int] = field(default_factory=list)

    def read(self, indices):
        self.largest = max(self.largest, len(indices))
        self.reads.append(len(indices))
        return Frames(tuple(indices), tuple(float(i) for i in indices), np.stack([pixels_of(i) for i in indices]))


class CountingBackbone:
    """Wraps a backbone and records the largest batch of frames it was asked to encode."""

    def __init__(self, inner):
        self.inner, self.largest = inner, 0

    def encode_frames(self, frames):
        self.largest = max(self.largest, len(frames))
        return self.inner.encode_frames(frames)

    def __getattr__(self, name):
        return getattr(self.inner, name)


SAMPLE = Sample(id="s", task="t", video="", question="What color is the car?", options=("a", "b"), answer=0)


@pytest.fixture(scope="module")
def tiny():
    return BACKBONES.get("tiny").load()


def test_streaming_reads_and_encodes_in_bounded_chunks_and_matches_in_memory(tiny):
    n, chunk = 120, 16
    source, backbone = CountingSource(), CountingBackbone(tiny)
    stream = StreamingDKS(k=8, tau=0.85, fill=True, chunk=chunk)
    selection, frames = stream.select_stream(SAMPLE, tuple(range(n)), source, backbone)
    assert len(selection.indices) == n and len(selection.keyframes) == 8 and len(frames) == n
    assert frames.pixels.nbytes == 0  # the selection's frames carry no pixels
    reducer = DFMReducer(alpha=0.05, chunk=chunk)
    ctx = ReductionContext(SAMPLE, selection, frames, backbone)
    visual = reducer.reduce_stream(source, ctx)
    assert visual.tokens.shape == (vilamp_visual_tokens(n, 8, tiny.tokens_per_frame) - 1, tiny.hidden_size)
    assert source.largest <= chunk and backbone.largest <= chunk

    # the same numbers without streaming: all frames decoded at once
    everything = source.read(range(n))
    in_memory = DKSSelector(k=8, tau=0.85, fill=True).select(SAMPLE, None, everything)
    assert dataclasses.replace(in_memory, method=selection.method) == selection
    tokens = tiny.encode_frames(everything)
    direct = reducer.reduce(tokens, ReductionContext(SAMPLE, selection, everything, tiny))
    assert torch.allclose(direct.tokens, visual.tokens, atol=1e-4)


def test_dks_as_a_plain_picker_and_dfm_needs_keyframes(tiny):
    source = CountingSource()
    everything = source.read(range(40))
    picked = DKSSelector(k=5, tau=0.85, fill=True, keep_non_keyframes=False).select(SAMPLE, None, everything)
    assert picked.indices == picked.keyframes and len(picked.indices) == 5
    no_kf = FrameSelection("uniform", tuple(range(4)))
    with pytest.raises(ValueError, match="keyframe"):
        DFMReducer().reduce(EncodedVideo(torch.zeros(4, 2, 3), tuple(range(4))),
                            ReductionContext(SAMPLE, no_kf, metadata_frames(range(4), range(4)), tiny))


def test_official_indexing_streams_its_reference_frames(tiny):
    source = CountingSource()
    selection = FrameSelection("dks", tuple(range(30)), (10, 20))
    frames = metadata_frames(range(30), range(30))
    ctx = ReductionContext(SAMPLE, selection, frames, tiny)
    streamed = DFMReducer(official_indexing=True, chunk=7).reduce_stream(source, ctx)
    everything = source.read(range(30))
    direct = DFMReducer(official_indexing=True).reduce(tiny.encode_frames(everything),
                                                       ReductionContext(SAMPLE, selection, everything, tiny))
    assert torch.allclose(streamed.tokens, direct.tokens, atol=1e-4)


def test_vilamp_tiny_needle_end_to_end(ray_cluster, tmp_path):
    outcome = evaluate(EvalRequest(task="needle", model="vilamp-tiny", limit=1, out=str(tmp_path), wandb=False,
                                   runner=RunnerConfig(workers=1)))
    lines = [json.loads(l) for l in (outcome.run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 1
    for line in lines:
        assert line["status"] in ANSWERED, line["error"]
        n, k = line["n_frames"], line["n_keyframes"]
        assert n == len(line["frame_indices"]) and k == len(line["keyframes"]) == min(32, n)
        assert line["visual_tokens"] == vilamp_visual_tokens(n, k, 16)
        assert line["needle_retained"] in (True, False)
        assert set(line["keyframes"]) <= set(line["frame_indices"])


@pytest.mark.slow
def test_streaming_10k_frames_full_size(tiny):
    """Full size (minutes on 2 cores): 10,000 frames stream through DKS + DFM in bounded chunks."""
    n = 10_000
    source, backbone = CountingSource(), CountingBackbone(tiny)
    stream = StreamingDKS(k=32, tau=0.85, fill=True, max_frames=n)
    selection, frames = stream.select_stream(SAMPLE, tuple(range(n)), source, backbone)
    visual = DFMReducer().reduce_stream(source, ReductionContext(SAMPLE, selection, frames, backbone))
    assert len(visual) + 1 == vilamp_visual_tokens(n, 32, tiny.tokens_per_frame) == 16 * 32 + (n - 32) + 1
    assert source.largest <= stream.chunk and backbone.largest <= stream.chunk
