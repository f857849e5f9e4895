"""The coarse_encode hook (key clips): on tiny LLaVA-OV and tiny Qwen2.5-VL, `encode_frames_coarse` gives exactly the
promised tokens on the right grid, is the model's own path at a smaller grid, generates, and with KeyClips lands on
the budget of the full-resolution anchors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import baselines.relevance
from baselines.keyclips import KeyClips
from harness.backbones import BACKBONES
from harness.core.records import Frames, GenerationConfig, Prompt, Sample, VideoMeta, VisualSequence
from harness.hf.text import chat_ids
from harness.methods.hooks import HookUnavailable, require_hook

PROMPT = Prompt(system="", user="What happens in the video?\nA. one\nB. two\nC. three\nD. four")


def frames(n: int, height: int = 64, width: int = 64, seed: int = 0) -> Frames:
    pixels = np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)
    return Frames(tuple(range(0, 10 * n, 10)), tuple(float(i) for i in range(n)), pixels)


@pytest.fixture(scope="module")
def llava():
    return BACKBONES.get("tiny").load()


@pytest.fixture(scope="module")
def qwen():
    return BACKBONES.get("qwen25vl").load(tiny_seed=0)


def test_llava_coarse_is_the_models_own_tokens_averaged_to_a_smaller_side(llava):
    clip = frames(6)
    full = llava.encode_frames(clip)
    assert torch.equal(llava.encode_frames_coarse(clip, 1).tokens, full.tokens)  # downscale 1 is encode_frames
    for downscale, side in ((1, 4), (2, 2), (4, 1)):
        coarse = llava.encode_frames_coarse(clip, downscale)
        assert coarse.tokens.shape == (6, side * side, llava.hidden_size) and coarse.grid is None
        assert coarse.timestamps_s == clip.timestamps_s
    # 2×2 of the 4×4 pooled grid: token (0, 0) is the mean of pooled tokens (0..1, 0..1) — every token counts
    maps = full.tokens.reshape(6, 4, 4, -1)
    expected = maps[:, 0:2, 0:2].mean(dim=(1, 2))
    assert torch.allclose(llava.encode_frames_coarse(clip, 2).tokens[:, 0], expected, atol=1e-5)
    assert torch.allclose(llava.encode_frames_coarse(clip, 4).tokens[:, 0], maps.mean(dim=(1, 2)), atol=1e-5)


def test_llava_downscale_must_divide_the_grid_in_one_line(llava):
    with pytest.raises(ValueError) as info:
        llava.encode_frames_coarse(frames(2), 3)
    assert "\n" not in str(info.value) and "downscale 3 does not divide the 4×4 token grid (valid: 1, 2, 4)" in str(
        info.value)


def test_qwen_coarse_grid_and_token_count(qwen):
    for height, width, native, coarse in ((64, 64, (4, 4), (2, 2)), (96, 128, (3, 4), (2, 2)),
                                          (180, 320, (3, 5), (2, 3))):
        clip = frames(5, height, width)
        assert qwen.native_grid(clip) == native == qwen.encode_frames(clip).grid[1:]  # ours = the processor's
        encoded = qwen.encode_frames_coarse(clip, 2)
        h, w = coarse  # half-up: 3 → 2, 5 → 3
        assert qwen.coarse_grid(clip, 2) == coarse
        assert encoded.grid == (3, h, w) and encoded.tokens.shape == (3, h * w, qwen.hidden_size)  # 5 frames → 3 rows
        assert encoded.frames_per_row == 2 and encoded.timestamps_s == clip.timestamps_s
    assert qwen.encode_frames_coarse(frames(4), 4).grid == (2, 1, 1)


def test_qwen_coarse_tokens_are_placed_on_the_coarse_grid(qwen):
    clip = frames(4)
    encoded = qwen.encode_frames_coarse(clip, 2)
    ids, at = chat_ids(qwen.tokenizer, PROMPT, {"type": "video"}, qwen.video_token_id, "<|video_pad|>")
    positions = qwen.video_positions(ids, at, encoded)[:, at : at + 8]  # 2 rows × 2×2
    rows, cols = positions[1] - positions[1].min(), positions[2] - positions[2].min()
    assert rows.tolist() == [0, 0, 1, 1] * 2 and cols.tolist() == [0, 1, 0, 1] * 2
    out = qwen.generate(VisualSequence.whole(encoded), PROMPT, GenerationConfig(max_new_tokens=2))
    assert out.visual_tokens == 8


@pytest.mark.parametrize("name", ["llava", "qwen"])
def test_key_clips_through_the_hook_land_exactly_on_the_budget(name, request, monkeypatch):
    """16 anchors × clips of 4 at 2×2 tokens = 64 frames × 4 = 256 = 16 full frames × 16 (LLaVA-OV + its newline);
    Qwen2.5-VL: 64 frames = 32 temporal rows × 4 = 128 = 16 full frames' 8 rows × 16."""
    backbone = request.getfixturevalue(name)
    n = 100
    meta = VideoMeta("v.mp4", num_frames=10 * n, fps=10.0, width=64, height=64)
    pool = frames(n)
    monkeypatch.setattr(baselines.relevance, "relevance",
                        lambda *_a, **_k: np.random.default_rng(5).random(n))
    sample = Sample(id="s", task="t", video="v.mp4", question="Which?", options=("a", "b"), answer=0)
    selection = KeyClips(anchors=16, clip_len=4, encoder="tiny-clip").select(sample, meta, pool)
    assert len(selection.indices) == 64 and selection.grid_downscale == 2
    rows = [pool.indices.index(i) for i in selection.indices]
    chosen = Frames(selection.indices, tuple(pool.timestamps_s[r] for r in rows), pool.pixels[rows])
    encoded = backbone.encode_frames_coarse(chosen, selection.grid_downscale)
    full = backbone.encode_frames(frames(16))
    assert encoded.flat.shape[0] == full.flat.shape[0] == (256 if name == "llava" else 128)
    out = backbone.generate(VisualSequence.whole(encoded), PROMPT, GenerationConfig(max_new_tokens=1))
    assert out.visual_tokens == (257 if name == "llava" else 128)


def test_backbones_without_the_hook_refuse_it():
    for name in ("fixed-cost", "vilamp", "vilamp-tiny"):  # vLLM is no registered backbone
        assert "coarse_encode" not in BACKBONES.get(name).hooks
    with pytest.raises(HookUnavailable, match="needs the backbone hook 'coarse_encode'"):
        require_hook(BACKBONES.get("fixed-cost").load(), "coarse_encode", "keyclips")
