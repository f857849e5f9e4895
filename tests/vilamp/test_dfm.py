"""DFM weights, reference keyframes, sequence assembly and the token-count formula, on hand-built tensors."""

import pytest
import torch

from harness.vilamp import vilamp_visual_tokens
from harness.vilamp.assembly import assemble
from harness.vilamp.dfm import CosineScorer, merge, reference_positions


def weights(scorer: CosineScorer, patches: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
    return torch.softmax(scorer.scores(patches, refs), dim=-1)


def test_small_alpha_concentrates_on_the_most_relevant_patch():
    q = torch.tensor([1.0, 0.0, 0.0])
    patches = torch.tensor([[[0.2, 1.0, 0.0], [1.0, 0.1, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5]]])
    refs = torch.zeros_like(patches) + torch.tensor([0.0, 0.0, -1.0])  # equally dissimilar-ish reference
    refs[0, :, 1] = 1e-3
    sharp = weights(CosineScorer(q, alpha=0.01, lam=0.0), patches, refs)[0]
    assert int(sharp.argmax()) == 1 and sharp[1] > 0.99
    soft = weights(CosineScorer(q, alpha=10.0, lam=0.0), patches, refs)[0]
    assert soft.max() < 0.3  # large α spreads the weight
    merged = merge(patches, CosineScorer(q, alpha=0.01, lam=0.0).scores(patches, refs))
    assert torch.allclose(merged[0], patches[0, 1], atol=1e-2)


def test_weight_moves_away_from_patches_identical_to_the_keyframe():
    q = torch.tensor([1.0, 0.0, 0.0])
    # patches 0 and 1 are equally relevant; patch 0 is identical to the keyframe's patch 0
    patches = torch.tensor([[[1.0, 0.5, 0.0], [1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]])
    refs = torch.tensor([[[1.0, 0.5, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]])
    no_redundancy = weights(CosineScorer(q, alpha=0.05, lam=0.0), patches, refs)[0]
    assert torch.isclose(no_redundancy[0], no_redundancy[1])
    w = weights(CosineScorer(q, alpha=0.05, lam=1.0), patches, refs)[0]
    assert w[1] > 0.99 and w[0] < 1e-3


def test_merge_weights_sum_to_one():
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(5, 9, 4, generator=g)
    scores = torch.zeros(5, 9)
    assert torch.allclose(merge(patches, scores), patches.mean(1), atol=1e-6)


def test_reference_is_nearest_preceding_keyframe_and_first_for_the_prefix():
    assert reference_positions(8, [2, 5]) == [2, 2, 2, 2, 2, 5, 5, 5]
    assert reference_positions(3, [0]) == [0, 0, 0]


def test_official_indexing_reproduces_the_released_code():
    # frames before the first keyframe refer to themselves; segment i refers to frame number i
    assert reference_positions(8, [2, 5], official_indexing=True) == [0, 1, 2, 0, 0, 5, 1, 1]
    with pytest.raises(ValueError, match="keyframe"):
        reference_positions(3, [])


def test_token_count_formula_and_assembly():
    assert vilamp_visual_tokens(600, 32, 196) == 6841  # notes/vilamp.md §2.3: N = 600, K = 32
    assert vilamp_visual_tokens(10_000, 32, 196) == 16_241
    assert vilamp_visual_tokens(20, 20, 16) == 321
    with pytest.raises(ValueError):
        vilamp_visual_tokens(3, 4, 16)
    is_kf = [False, True, False, False, True]
    kf = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2) + 100
    merged = torch.tensor([[0.0, 0.0], [2.0, 2.0], [3.0, 3.0]])
    seq = assemble(is_kf, kf, merged)
    assert seq.shape[0] == vilamp_visual_tokens(5, 2, 3) - 1  # the backbone appends image_newline
    assert torch.equal(seq[0], merged[0]) and torch.equal(seq[1:4], kf[0])
    assert torch.equal(seq[4:6], merged[1:3]) and torch.equal(seq[6:], kf[1])
    with pytest.raises(ValueError, match="do not match"):
        assemble(is_kf, kf[:1], merged)
