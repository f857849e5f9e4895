"""DivPrune (CVPR 2025): the greedy max–min diverse subset, pinned on hand-built tokens, and the reducer end to end."""

from __future__ import annotations

import itertools

import pytest
import torch

from baselines.divprune import DivPrune, max_min_diverse


def min_pairwise_distance(features: torch.Tensor, rows) -> float:
    unit = torch.nn.functional.normalize(features.float(), dim=-1)
    return min(float(1 - unit[a] @ unit[b]) for a, b in itertools.combinations(rows, 2))


def test_the_greedy_starts_from_the_most_isolated_token_and_spreads_out():
    # four tight clusters of directions in 3-D plus one far outlier: the outlier first, then one per cluster
    base = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]])
    clusters = torch.cat([base[i] + 0.01 * torch.randn(3, 3, generator=torch.Generator().manual_seed(i))
                          for i in range(4)])
    features = torch.cat([clusters, torch.tensor([[-1.0, -1.0, -1.0]])])
    chosen = max_min_diverse(features, 5)
    assert int(chosen[0]) == 12  # the outlier: the largest distance to its nearest neighbour
    clusters_hit = {int(i) // 3 for i in chosen[1:] if int(i) < 12}
    assert len(clusters_hit) == 4  # one token from each cluster, never two from one


def test_on_a_small_case_the_greedy_set_is_as_diverse_as_the_best_subset():
    features = torch.randn(9, 4, generator=torch.Generator().manual_seed(3))
    chosen = max_min_diverse(features, 3).tolist()
    best = max(min_pairwise_distance(features, rows) for rows in itertools.combinations(range(9), 3))
    # the greedy max–min rule is a 2-approximation of the optimum (Ravi et al. 1994): check it is no worse
    assert min_pairwise_distance(features, chosen) >= best / 2
    assert len(set(chosen)) == 3


def test_duplicates_are_never_chosen_twice_and_the_budget_is_exact():
    features = torch.ones(6, 8)  # every token the same
    assert len(set(max_min_diverse(features, 4).tolist())) == 4
    assert len(max_min_diverse(torch.randn(50, 8), 13)) == 13
    assert max_min_diverse(torch.randn(1, 8), 5).tolist() == [0]


def test_column_weights_scale_the_distances():
    features = torch.randn(12, 6, generator=torch.Generator().manual_seed(4))
    assert torch.equal(max_min_diverse(features, 5, torch.ones(12)), max_min_diverse(features, 5))
    # orthogonal tokens, weight −5: every calibrated distance to the set is −5 < −1, so only a −inf mask keeps the
    # chosen token from being picked again
    assert max_min_diverse(torch.eye(3), 3, torch.full((3,), -5.0)).tolist() == [0, 1, 2]


def test_the_reducer_keeps_the_ratio_of_the_videos_tokens_in_order():
    from harness.core.records import EncodedVideo

    encoded = EncodedVideo(torch.randn(4, 16, 8, generator=torch.Generator().manual_seed(0)), (0.0, 1.0, 2.0, 3.0))
    visual = DivPrune(keep_ratio=0.25).reduce(encoded, None)
    assert len(visual) == 16 and visual.rows.tolist() == sorted(visual.rows.tolist())
    assert torch.equal(visual.tokens, encoded.flat[visual.rows])
    with pytest.raises(ValueError, match="keep_ratio"):
        DivPrune(keep_ratio=0.0)

