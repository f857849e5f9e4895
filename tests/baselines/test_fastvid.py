"""FastVID (NeurIPS 2025): DySeg cuts, density-peak anchors, DTM merging and the exact budget, on hand-built tokens."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from baselines.fastvid import FastVID, anchor_quotas, density_peak_scores, dpc_distances, dyseg, merge_into, stprune
from harness.core.records import EncodedVideo


class StubBackbone:
    """Offers vision_attention with a given received-attention map (keys unused by FastVID)."""

    hooks = frozenset({"vision_attention"})
    name = "stub"

    def __init__(self, received: torch.Tensor) -> None:
        self.received = received

    def vision_attention(self, frames):
        return self.received, torch.zeros(*self.received.shape, 4)


def run(reducer: FastVID, tokens: torch.Tensor, received: torch.Tensor | None = None):
    if received is None:
        received = torch.rand(tokens.shape[:2], generator=torch.Generator().manual_seed(1))
    encoded = EncodedVideo(tokens, tuple(float(i) for i in range(tokens.shape[0])))
    return reducer.reduce(encoded, SimpleNamespace(backbone=StubBackbone(received), frames=None)), encoded


def scenes(lengths, m=16, c=8, seed=0):
    """Frames of len(lengths) scenes: every token of scene s is basis vector e_s plus 1% noise."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.eye(c)[s].expand(n, m, c) + 0.01 * torch.randn(n, m, c, generator=g)
                      for s, n in enumerate(lengths)])


def test_dyseg_cuts_where_the_scene_changes():
    # 3 scenes of 3, 4, 2 frames: within a scene adjacent cos ≈ 1, across scenes ≈ 0 < τ → cuts after frames 2, 6
    means = scenes([3, 4, 2]).mean(1)
    assert dyseg(means, min_segments=1, tau=0.9) == [3, 4, 2]  # by the threshold alone
    assert dyseg(means, min_segments=3, tau=-1.0) == [3, 4, 2]  # by the c − 1 = 2 least similar gaps alone
    # the official c = 8 on 16 frames of 3 scenes: 8 segments, whose boundaries include both scene changes
    sizes = dyseg(scenes([5, 6, 5]).mean(1), min_segments=8, tau=0.9)
    assert len(sizes) == 8 and sum(sizes) == 16 and {5, 11} <= set(torch.tensor(sizes).cumsum(0).tolist())


def test_dyseg_min_segments_rule_adds_the_least_similar_gaps():
    # one static scene: no gap is below τ, yet c = 4 forces the 3 least similar gaps; gap i ends frame i
    means = torch.tensor([[1.0, 0.0]] * 6)
    means[3] = torch.tensor([1.0, 0.05])  # gaps 2 and 3 are the least similar, then gap 4 (frames 4-5)
    means[5] = torch.tensor([1.0, 0.02])
    assert dyseg(means, min_segments=4, tau=0.9) == [3, 1, 1, 1]
    assert dyseg(means, min_segments=1, tau=0.9) == [6]
    assert dyseg(means[:2], min_segments=8, tau=0.9) == [1, 1]  # fewer gaps than c − 1: all of them
    assert dyseg(means[:1], 8, 0.9) == [1]


def test_density_peaks_are_the_cores_of_the_dense_clusters():
    # two tight clusters (a core and 4 points 0.1 away) and 4 isolated noise points ≥ 10 apart, in 2-D.
    # ρ = exp(-mean d² over the 4 nearest incl. itself): each core has the 4 smallest distances of its cluster, so
    # it is its cluster's density peak; the denser core's δ is the frame's max distance, the other core's δ the
    # inter-cluster distance, members' δ = 0.1/√2, and noise has ρ < e^-100 → the top two scores are the cores.
    ring = 0.1 * torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    core_a, core_b = torch.tensor([0.0, 0.0]), torch.tensor([5.0, 5.0])
    noise = torch.tensor([[20.0, -20], [-20, 20], [30, 30], [-30, -30]])
    x = torch.cat([noise[:2], core_a[None] + ring[:2], core_a[None], core_a[None] + ring[2:],
                   core_b[None] + ring, core_b[None] + 0.0 * ring[:1], noise[2:]])
    # rows: 0-1 noise, 2-3 A ring, 4 A core, 5-6 A ring, 7-10 B ring, 11 B core, 12-13 noise
    score = density_peak_scores(dpc_distances(x), knn=4)
    assert set(torch.topk(score, 2).indices.tolist()) == {4, 11}
    assert score[[0, 1, 12, 13]].max() < 1e-6 * score[[4, 11]].min()
    ring_b_delta = 0.1 / math.sqrt(2)  # a B ring point's nearest denser token is its core
    density_ring_b = math.exp(-(0 + 0.01 + 2 * 0.02) / 2 / 4)  # its 4 nearest: itself, core, 2 neighbours at 0.1√2
    assert float(score[7]) == pytest.approx(ring_b_delta * density_ring_b, rel=1e-4)


def test_merge_is_the_beta_weighted_mean_of_the_anchors_members():
    # anchors a1 = (1, 0), a2 = (0, 1); the pool holds both plus x = (3, 1), cos-closest to a1.
    # a1: members {a1, x}, n = 2, w = max(1/3, 0.6) = 0.6 → 0.6·(1, 0) + 0.4·(2, 0.5) = (1.4, 0.2)
    # a2: members {a2}, w = 0.6 → unchanged. With β = 0, w = 1/3 → (1/3)(1, 0) + (2/3)(2, 0.5) = (5/3, 1/3)
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pool = torch.tensor([[1.0, 0.0], [3.0, 1.0], [0.0, 1.0]])
    assert torch.allclose(merge_into(anchors, pool, 0.6), torch.tensor([[1.4, 0.2], [0.0, 1.0]]))
    assert torch.allclose(merge_into(anchors, pool, 0.0), torch.tensor([[5 / 3, 1 / 3], [0.0, 1.0]]))
    # an anchor no token joins (its twin wins the tie) stays itself: w = max(1/1, β) = 1
    assert torch.allclose(merge_into(torch.tensor([[1.0, 0], [2.0, 0]]), torch.tensor([[1.0, 0]]), 0.6)[1],
                          torch.tensor([2.0, 0]))


def test_anchor_frames_are_every_pth_from_the_segment_end_and_share_its_context_budget():
    assert anchor_quotas(1, 7, 4, 184) == [7]  # a one-frame segment keeps its own contextual share
    assert anchor_quotas(2, 1, 4, 13) == [0, 2]  # last frame only, 1·2 anchors
    assert anchor_quotas(5, 1, 4, 13) == [2, 0, 0, 0, 3]  # frames 4, 0; 5 = 3 + 2, the later frame first
    assert anchor_quotas(9, 7, 4, 184) == [21, 0, 0, 0, 21, 0, 0, 0, 21]
    assert anchor_quotas(4, 3, 4, 3) == [3, 3, 3, 3]  # 12 anchors on one frame of 3 candidates spill back


def test_stprune_keeps_salient_tokens_and_merges_only_within_a_segment():
    # 2 one-frame segments of 4 tokens: salient = the most attended, context = 1 anchor merged from the rest
    tokens = torch.tensor([[[1.0, 0], [0, 1], [0, 1.125], [0, 0.875]],
                           [[5.0, 5], [-1, 0], [-1.125, 0], [-0.875, 0]]])
    attention = torch.tensor([[9.0, 0, 0, 0], [9.0, 0, 0, 0]])
    rows, out = stprune(tokens, attention, [1, 1], salient=1, context=1, interval=4, beta=0.6, knn=3)
    # frame 0's non-salient (0,1),(0,1.125),(0,0.875): with k = 3 the densest is (0,1) (both others 0.125 away) →
    # the anchor, row 1; all three are cos-1 with it, mean (0, 1) → it stays (0, 1). Frame 1 alike: row 5, (-1, 0)
    assert rows.tolist() == [0, 1, 4, 5]
    assert torch.allclose(out, torch.tensor([[1.0, 0], [0, 1], [5, 5], [-1, 0]]))
    # one 2-frame segment: only its last frame anchors, 1·2 = 2 of (-1,0),(-1.125,0),(-0.875,0): the densest
    # (-1,0), then (-1.125,0) and (-0.875,0) tie exactly (mirror images about (-1,0), in exact binary fractions:
    # the same ρ and δ = 0.125/√2), so the earlier, row 6. Every non-salient token of the segment joins frame 1's
    # anchors: frame 0's (0,y) are cos 0 with both (the tie goes to the first, (-1,0)), frame 1's are cos 1 with
    # both (again the first). So (-1,0) has 6 members with mean (-0.5, 0.5): 0.6·(-1, 0) + 0.4·(-0.5, 0.5) =
    # (-0.8, 0.2); the other anchor has none and stays (-1.125, 0).
    rows, out = stprune(tokens, attention, [2], salient=1, context=1, interval=4, beta=0.6, knn=3)
    assert rows.tolist() == [0, 4, 5, 6]
    assert torch.allclose(out[2], torch.tensor([-0.8, 0.2]))
    assert torch.equal(out[3], torch.tensor([-1.125, 0]))


def test_the_reducer_never_merges_across_scenes_and_places_anchors_at_their_rows():
    tokens = scenes([4, 4, 4], m=16)
    visual, encoded = run(FastVID(retention=0.25, min_segments=1), tokens)
    assert len(visual) == 12 * 4 and visual.rows.tolist() == sorted(set(visual.rows.tolist()))
    scene_of_row = visual.rows // (4 * 16)
    # every output token is dominated by its own row's scene direction: no cross-scene averaging
    assert torch.equal(visual.tokens.argmax(-1), scene_of_row)
    assert (visual.tokens - encoded.flat[visual.rows]).abs().max() < 0.1  # merges of near-duplicates
    # the same video as one segment (no cut): the anchor frames 3, 7, 11 each absorb all three scenes
    visual, encoded = run(FastVID(retention=0.25, min_segments=1, tau=-1.0), tokens)
    assert (visual.tokens - encoded.flat[visual.rows]).abs().max() > 0.2


def test_visual_tokens_is_exact_on_random_inputs_of_several_shapes():
    g = torch.Generator().manual_seed(0)
    for reducer in (FastVID(), FastVID(retention=0.25), FastVID(retention=1.0), FastVID(retention=0.5, knn=2),
                    FastVID(retention=0.3, anchor_interval=1, min_segments=2, tau=0.0)):
        for t, m in ((1, 16), (5, 16), (16, 16), (7, 9), (3, 196), (2, 1)):
            visual, _ = run(reducer, torch.randn(t, m, 6, generator=g))
            assert len(visual) == reducer.visual_tokens(t, m), (reducer, t, m)
            assert len(set(visual.rows.tolist())) == len(visual)
    assert FastVID().visual_tokens(32, 196) == 32 * 19  # official: int(196·0.1) = 19 = 12 salient + 7 context
    assert FastVID().split(196) == (12, 7)
    assert FastVID(retention=0.25).visual_tokens(16, 16) == 64  # the canary budget
    assert FastVID(retention=0.01).visual_tokens(4, 16) == 4  # at least one token a frame


def test_ties_go_to_the_earlier_token():
    # equal attention: the salient token is the first (row 0). Twins (1,0) at rows 1, 2 have the same density; the
    # earlier counts as the denser, so it scores ρ·(the frame's max distance) and the later ρ·0 → row 1 anchors.
    tokens = torch.tensor([[[3.0, 3], [1, 0], [1, 0], [0, 1]]])
    twins = tokens[0, 1:]
    score = density_peak_scores(dpc_distances(twins), knn=2)
    assert float(score[0]) == pytest.approx(1.0) and float(score[1]) == 0.0  # ρ = e^0, δ = ‖(1,0) − (0,1)‖/√2
    rows, _ = stprune(tokens, torch.zeros(1, 4), [1], salient=1, context=1, interval=4, beta=0.6, knn=2)
    assert rows.tolist() == [0, 1]


def test_validated():
    tokens = torch.randn(8, 16, 6, generator=torch.Generator().manual_seed(2))
    for field, value in (("retention", 0.0), ("retention", 1.5), ("min_segments", 0), ("tau", 2.0),
                         ("context_share", -0.1), ("anchor_interval", 0), ("beta", 1.5), ("knn", 0)):
        with pytest.raises(ValueError, match=f"fastvid: {field}"):
            FastVID(**{field: value})
    with pytest.raises(ValueError, match="vision_attention"):
        run(FastVID(), tokens, torch.rand(8, 15))
