"""PyramidDrop (CVPR 2025): each stage keeps exactly its scheduled count, ranked by the boundary layer's own attention
from the last prompt token, on a 4-layer tiny LLaVA-OV (the shipped tiny LLM has 2 layers: one boundary only)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from baselines.pyramiddrop import PyramidDrop
from harness.backbones.fastv import prefill_pruned
from harness.backbones.llava_ov import LlavaOvBackbone, _tiny_config, init_model, tiny_processor
from harness.core.records import EncodedVideo, Frames, GenerationConfig, LlmPrune, Prompt, VisualSequence
from harness.hf.text import tiny_tokenizer

PROMPT = Prompt(system="", user="Which word appeared?\nA. APPLE\nB. TIGER\nC. CLOUD\nD. PIANO")


@pytest.fixture(scope="module")
def deep():
    """A tiny LLaVA-OV whose LLM has 4 layers, and the prompt inputs of 4 random frames (64 visual tokens)."""
    tokenizer = tiny_tokenizer()
    config = _tiny_config(tokenizer)
    config.text_config.num_hidden_layers = 4
    config.text_config.layer_types = ["full_attention"] * 4
    backbone = LlavaOvBackbone(init_model(config, tokenizer, seed=5).eval(), tiny_processor(tokenizer), "deep")
    pixels = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    encoded = backbone.encode_frames(Frames(tuple(range(4)), (0.0, 1.0, 2.0, 3.0), pixels))
    return backbone, encoded, backbone._inputs(VisualSequence.whole(encoded), PROMPT)


def cache_lengths(cache) -> list[int]:
    return [int(layer.keys.shape[-2]) for layer in cache.layers]


def test_each_stage_keeps_exactly_its_scheduled_count(deep):
    backbone, _, inputs = deep
    n, span = inputs.embeds.shape[1], inputs.visual
    prune = PyramidDrop(layers=(1, 2, 3), keep_ratios=(0.5, 0.25, 0.125)).request()
    assert prune.counts(len(span)) == (32, 16, 8)  # int(64 · 0.5), int(64 · 0.25), int(64 · 0.125)
    positions = torch.arange(n)[None]
    with torch.inference_mode():
        _, cache, kept, kept_positions = prefill_pruned(backbone.model, inputs.embeds, positions, span, prune)
    # each layer's KV holds the tokens it saw: all before layer 1, then 32, 16 and 8 of the 64 visual tokens
    assert cache_lengths(cache) == [n, n - 32, n - 48, n - 56]
    assert len(kept) == 8 and kept == sorted(kept) and set(kept) <= set(span)
    assert kept_positions[0].tolist() == [*range(span.start), *kept, *range(span.stop, n)]  # original positions


def test_the_first_stage_ranks_by_the_boundary_layers_own_attention(deep):
    backbone, _, inputs = deep
    span = inputs.visual
    with torch.inference_mode():
        _, _, kept, _ = prefill_pruned(backbone.model, inputs.embeds, torch.arange(inputs.embeds.shape[1])[None], span,
                                       LlmPrune((2,), (0.25,), rank="own", rounding="floor"))
        backbone.model.set_attn_implementation("eager")
        try:
            attentions = backbone.model(inputs_embeds=inputs.embeds, output_attentions=True).attentions
        finally:
            backbone.model.set_attn_implementation("sdpa")
    # PyramidDrop ranks at boundary L with layer L's attention (FastV would read layer L − 1's)
    scores = attentions[2][0, :, -1, span.start : span.stop].mean(0)
    assert kept == sorted(span.start + int(i) for i in torch.topk(scores, 16).indices)
    previous = attentions[1][0, :, -1, span.start : span.stop].mean(0)
    assert kept != sorted(span.start + int(i) for i in torch.topk(previous, 16).indices)  # the two rules differ here


def test_generate_reports_the_last_stages_count(deep):
    backbone, encoded, _ = deep
    visual = PyramidDrop(layers=(1, 3), keep_ratios=(0.5, 0.25)).reduce(encoded, None)
    out = backbone.generate(visual, PROMPT, GenerationConfig(max_new_tokens=3))
    assert out.visual_tokens == 64 + 1 and out.visual_tokens_after_llm_prune == 16 + 1  # + the image_newline


def test_defaults_schedule_and_validation():
    drop = PyramidDrop()
    assert drop.request() == LlmPrune((8, 16, 24), (0.5, 0.25, 0.125), rank="own", rounding="floor")
    assert drop.request().counts(576) == (288, 144, 72)  # LLaVA-1.5's 576 image tokens, halved per stage
    assert drop.visual_tokens(16, 196) == 16 * 196 and PyramidDrop.requires == {"llm_prune"}
    assert LlmPrune.fastv(2, 0.5).counts(7) == (math.ceil(3.5),)  # FastV rounds up
    assert LlmPrune((1,), (0.01,), rank="own", rounding="floor").counts(10) == (1,)  # never below one token
    encoded = EncodedVideo(torch.zeros(2, 4, 8), (0.0, 1.0))
    visual = drop.reduce(encoded, None)
    assert torch.equal(visual.tokens, encoded.flat) and visual.llm_prune == drop.request()
    for bad in ({"layers": (16, 8), "keep_ratios": (0.5, 0.25)}, {"layers": (8,), "keep_ratios": (0.5, 0.25)},
                {"layers": (8, 16), "keep_ratios": (0.25, 0.5)}, {"layers": (8,), "keep_ratios": (1.5,)}):
        with pytest.raises(ValueError, match="pyramiddrop: LlmPrune"):
            PyramidDrop(**bad)


def test_a_stage_beyond_the_llm_fails_clearly(deep):
    backbone, encoded, _ = deep
    with pytest.raises(ValueError, match="must be below the LLM's 4 layers"):
        backbone.generate(PyramidDrop(layers=(2, 4), keep_ratios=(0.5, 0.25)).reduce(encoded, None), PROMPT,
                          GenerationConfig(max_new_tokens=1))
