"""Blind: an empty visual sequence, which every backbone answers from the text alone, whatever the video."""

import numpy as np
import pytest
import torch

from baselines.blind import Blind
from harness.backbones import BACKBONES
from harness.core.records import EncodedVideo, Frames, GenerationConfig, Prompt
from harness.data.tasks import get_task
from harness.model.preflight import check_combination
from harness.model.specs import MODELS, Component, ModelSpec
from harness.run.pipeline import Pipeline

PROMPT = Prompt(system="", user="Which of these appeared in the video?\nA. red circle\nB. blue star\nC. cyan cross"
                                "\nD. green square")
LOADS = {"tiny": {}, "qwen25vl": {"tiny_seed": 0}}


def frames(n: int, step_s: float, seed: int) -> Frames:
    pixels = np.random.default_rng(seed).integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)
    return Frames(tuple(range(n)), tuple(i * step_s for i in range(n)), pixels)


def test_the_sequence_is_empty_rows_of_the_encoding():
    encoded = EncodedVideo(torch.randn(4, 16, 64), (0.0, 1.0, 2.0, 3.0))
    visual = Blind().reduce(encoded, None)
    assert len(visual) == 0 and visual.tokens.shape == (0, 64) and visual.tokens.dtype == encoded.tokens.dtype
    assert visual.rows is not None and visual.rows.shape == (0,) and visual.source is encoded
    assert visual.llm_prune is None and Blind.requires == frozenset() and Blind.emits_rows


@pytest.fixture(scope="module", params=sorted(LOADS))
def backbone(request):
    return BACKBONES.get(request.param).load(**LOADS[request.param])


def test_the_answer_does_not_depend_on_the_video(backbone):
    """Two videos of different lengths, pixels and frame rates (on Qwen2.5-VL: 2 vs 5 temporal groups, which
    would shift the text's M-RoPE positions if the dropped video still took its positions)."""
    short, long = frames(4, 1.0, seed=0), frames(9, 3.0, seed=1)
    a, b = (Blind().reduce(backbone.encode_frames(f), None) for f in (short, long))
    inputs_a, inputs_b = backbone._inputs(a, PROMPT), backbone._inputs(b, PROMPT)
    assert torch.equal(inputs_a.embeds, inputs_b.embeds) and inputs_a.n_visual == 0
    assert inputs_a.embeds.shape[1] == inputs_a.n_text  # nothing but the chat's text, not even an image_newline
    if inputs_a.positions is not None:  # Qwen2.5-VL: the positions of a text-only chat
        assert torch.equal(inputs_a.positions, inputs_b.positions)
        assert torch.equal(inputs_a.positions[:, 0], torch.arange(inputs_a.n_text).expand(3, -1))
    for config in (GenerationConfig(max_new_tokens=6), GenerationConfig(max_new_tokens=1, choices=tuple("ABCD"))):
        out_a, out_b = backbone.generate(a, PROMPT, config), backbone.generate(b, PROMPT, config)
        assert out_a.text == out_b.text and out_a.visual_tokens == out_b.visual_tokens == 0
        assert out_a.text_tokens == inputs_a.n_text


def test_fixed_cost_answers_blind():
    backbone = BACKBONES.get("fixed-cost").load(step_s=0.0)
    visual = Blind().reduce(backbone.encode_frames(frames(4, 1.0, seed=0)), None)
    assert backbone.generate(visual, PROMPT, GenerationConfig()).visual_tokens == 0


def test_the_preflight_accepts_blind_on_grid_placed_backbones():
    check_combination(ModelSpec("q", "d", Component("qwen25vl", {"tiny_seed": 0}), Component("uniform"),
                                Component("blind")))


def test_tiny_blind_runs_one_sample_with_no_visual_tokens(word_sample):
    sample = word_sample()
    result = Pipeline(MODELS.get("tiny-blind"), get_task("needle")).run(sample)
    assert result.status == "ok" and result.raw_output in ("A", "B", "C", "D"), result.error
    assert result.visual_tokens == 0 and len(result.frame_indices) == 16  # frames chosen, none reach the LLM
    # a frame at 2 s is among the 16 chosen, but its tokens never reach the LLM: the needle is not retained
    assert any(2.0 <= i / 10.0 < 3.0 for i in result.frame_indices) and result.needle_retained is False
