"""FrameFusion (ICCV 2025): merging at the same patch position across frames, the budget rule, and the importance prune,
pinned on hand-built hidden states and on the tiny LLaVA-OV's real layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.framefusion import FrameFusion
from harness.backbones import BACKBONES
from harness.backbones.framefusion import FusionState, merge_step, prefill_fused, previous_same_patch, prune_ratio
from harness.core.records import EncodedVideo, Frames, GenerationConfig, LlmFuse, Prompt, VisualSequence

PROMPT = Prompt(system="", user="Which word appeared?\nA. APPLE\nB. TIGER\nC. CLOUD\nD. PIANO")


def test_the_budget_rule_is_the_official_one():
    # nothing merged yet: pruning 70% now keeps 0.3 of the tokens at every one of Qwen2-7B's 28 layers
    assert prune_ratio([], 0.3, 28) == pytest.approx(0.7)
    # one step merged half: remaining 0.5, spent 0.5; the 27 layers left must average (8.4 − 0.5) / 27 of N
    assert prune_ratio([0.5], 0.3, 28) == pytest.approx(1 - (28 * 0.3 - 0.5) / (27 * 0.5))
    assert prune_ratio([0.5], 1.0, 2) == 0.0  # the budget already holds: nothing to prune
    assert prune_ratio([0.0], 0.3, 2) == 1.0  # a 2-layer LLM cannot reach 0.3 once layer 0 saw every token


def state(patches, start=1):
    return FusionState(list(range(start, start + len(patches))), torch.tensor(patches), start)


def test_a_token_repeated_at_its_patch_folds_into_the_earliest_as_the_plain_mean():
    x, y, z = torch.tensor([1.0, 0, 0]), torch.tensor([0, 1.0, 0]), torch.tensor([0, 0, 1.0])
    # 3 frames × 2 patches; patch 0 is x, 2x, 4x (cosine 1 to its previous), patch 1 changes every frame
    visual = torch.stack([x, y, 2 * x, z, 4 * x, -y])
    hidden = torch.cat([torch.full((1, 3), 9.0), visual, torch.full((1, 3), 7.0)])[None]  # one text token each side
    s = state([0, 1, 0, 1, 0, 1])
    assert previous_same_patch(s.patches).tolist() == [-1, -1, 0, 1, 2, 3]
    merged, rows = merge_step(hidden, s, LlmFuse(cost=0.5, similarity=0.6, min_ratio=0.1), steps=29)
    # marked: patch 0 of frames 1 and 2 (2 of 6 = 1/3 < the 0.5 the budget allows): both fold into frame 0's x,
    # whose value becomes the plain mean (x + 2x + 4x) / 3; patch 1's tokens and the text are untouched
    assert rows.tolist() == [0, 1, 2, 4, 6, 7] and s.kept == [1, 2, 4, 6] and s.patches.tolist() == [0, 1, 1, 1]
    torch.testing.assert_close(merged[0, rows], torch.stack([hidden[0, 0], 7 * x / 3, y, z, -y, hidden[0, 7]]))
    assert s.sparsities == [pytest.approx(1 / 3)] and not s.merged  # 1/3 ≥ min_ratio: merging goes on


def test_a_run_folds_into_its_head_and_a_small_share_ends_merging():
    x, y = torch.tensor([1.0, 0]), torch.tensor([0, 1.0])
    # one patch over 4 frames: x, 2x, y, 3y → frame 1 folds into frame 0, frame 3 into frame 2 (the head of its run)
    hidden = torch.stack([x, 2 * x, y, 3 * y])[None]
    s = state([0, 0, 0, 0], start=0)
    merged, rows = merge_step(hidden, s, LlmFuse(cost=0.4, similarity=0.6, min_ratio=0.6), steps=29)
    assert rows.tolist() == [0, 2] and s.kept == [0, 2]
    torch.testing.assert_close(merged[0, rows], torch.stack([1.5 * x, 2 * y]))
    assert s.merged and not s.pruned  # a half merged < min_ratio 0.6: the last merge step; the prune comes next


def test_when_merging_alone_meets_the_budget_only_the_most_similar_merge_and_nothing_is_pruned():
    e0, e1 = torch.eye(2)
    # one patch over 4 frames drifting from e0: cosine to the previous 0.995, 0.93, 0.95 — all three ≥ 0.6
    visual = torch.stack([e0, e0 + 0.1 * e1, e0 + 0.5 * e1, e0 + e1])[None]
    s = state([0, 0, 0, 0], start=0)
    _, rows = merge_step(visual, s, LlmFuse(cost=0.5, similarity=0.6, min_ratio=0.1), steps=4)
    # share 0.75 ≥ the 0.5 allowed: only int(0.5 · 4) = 2 merge, the two most similar (frames 1 and 3)
    assert rows.tolist() == [0, 2] and s.merged and s.pruned and s.sparsities == []


@pytest.fixture(scope="module")
def tiny():
    backbone = BACKBONES.get("tiny").load()
    pixels = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    encoded = backbone.encode_frames(Frames(tuple(range(4)), (0.0, 1.0, 2.0, 3.0), pixels))
    return backbone, encoded, backbone._inputs(VisualSequence.whole(encoded), PROMPT)


def test_with_nothing_similar_the_prune_meets_the_cost_by_layer_zeros_attention(tiny):
    backbone, encoded, inputs = tiny
    n, span = inputs.embeds.shape[1], inputs.visual
    patches = torch.arange(len(span)) % encoded.tokens.shape[1]
    positions = torch.arange(n)[None]
    with torch.inference_mode():
        _, cache, kept = prefill_fused(backbone.model, inputs.embeds, positions, span, patches,
                                       LlmFuse(cost=0.625, similarity=1.0, min_ratio=0.1))
        eager = BACKBONES.get("tiny").load().model
        eager.set_attn_implementation("eager")
        attention = eager(inputs_embeds=inputs.embeds, output_attentions=True).attentions[0]
    # step 0 merges nothing (share 0 < min_ratio: merging ends); layer 0 then prunes 1 − (2·0.625 − 1)/1 = 75%:
    # 64 → 16, so layers 0 and 1 see 64 and 16 = 0.625 of 64 on average; ranked by layer 0's last-token attention
    scores = attention[0, :, -1, span.start : span.stop].mean(0)
    assert kept == sorted(span.start + int(i) for i in torch.topk(scores, 16).indices)
    assert [int(layer.keys.shape[-2]) for layer in cache.layers] == [n, n - 48]  # layer 0's KV holds every token


def test_static_frames_fold_into_the_first_before_layer_zero(tiny):
    backbone, encoded, _ = tiny
    still = EncodedVideo(encoded.tokens[:1].repeat(4, 1, 1), encoded.timestamps_s)
    inputs = backbone._inputs(VisualSequence.whole(still), PROMPT)
    patches = torch.arange(64) % 16
    with torch.inference_mode():
        _, cache, kept = prefill_fused(backbone.model, inputs.embeds, torch.arange(inputs.embeds.shape[1])[None],
                                       inputs.visual, patches, LlmFuse(cost=0.9, similarity=0.99, min_ratio=0.1))
    # frames 1-3 equal frame 0 token for token (cosine 1): share 0.75 ≥ the allowed 1 − 0.9 → int(0.1 · 64) = 6 merge
    assert len(kept) == 64 - 6 and int(cache.layers[0].keys.shape[-2]) == inputs.embeds.shape[1] - 6


def test_generate_runs_framefusion_and_reports_the_survivors(tiny):
    backbone, encoded, _ = tiny
    visual = FrameFusion(cost=0.625, similarity=1.0).reduce(encoded, None)
    out = backbone.generate(visual, PROMPT, GenerationConfig(max_new_tokens=2))
    assert out.visual_tokens == 64 + 1 and out.visual_tokens_after_llm_prune == 16 + 1  # + the image_newline


def test_defaults_and_validation():
    fusion = FrameFusion()
    assert fusion.request() == LlmFuse(0.3, 0.6, 0.1) and FrameFusion.requires == {"llm_fuse"}
    assert fusion.visual_tokens(16, 196) == 16 * 196
    with pytest.raises(ValueError, match="framefusion: LlmFuse: cost"):
        FrameFusion(cost=0.0)
