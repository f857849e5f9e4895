"""FlashVID (ICLR 2026): ADTS per frame, redundancy trees across frames, DPC-kNN to the exact budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.flashvid import FlashVID, adts, apportion, calibration, dpc_knn, redundancy_trees, split_budget
from harness.core.records import EncodedVideo, Frames, FrameSelection, LlmPrune, Sample
from harness.methods.reduction import ReductionContext


class FakeBackbone:
    """Offers vision_attention with a given received-attention map [T, M]."""

    name = "fake"
    hooks = frozenset({"vision_attention"})

    def __init__(self, received: torch.Tensor):
        self.received = received

    def vision_attention(self, frames):
        assert len(frames) == self.received.shape[0]
        return self.received, torch.zeros(*self.received.shape, 4)


def context(received: torch.Tensor) -> ReductionContext:
    t = received.shape[0]
    frames = Frames(tuple(range(t)), tuple(float(i) for i in range(t)), np.zeros((t, 8, 8, 3), dtype=np.uint8))
    sample = Sample(id="s", task="t", video="v.mp4", question="q?", options=("a", "b"), answer=0)
    return ReductionContext(sample, FrameSelection("uniform", frames.indices), frames, FakeBackbone(received))


def one_hot(dim: int, c: int = 32, scale: float = 1.0) -> torch.Tensor:
    v = torch.zeros(c)
    v[dim] = scale
    return v


def test_official_budget_split():
    assert split_budget(196, 0.25, 1.25, 0.7) == (44, 18)  # LLaVA-OV: ⌈196·0.3125⌉ = 62, ⌈0.7·62⌉ = 44 ADTS
    assert split_budget(16, 0.25, 1.0, 0.7) == (3, 1)  # tiny / canary: 4 per frame = 64 of 16×16
    assert split_budget(16, 0.25, 1.0, 0.0) == (0, 4)
    assert split_budget(4, 1.0, 1.25, 0.7) == (3, 1)  # capped at the whole row


def test_adts_takes_the_high_attention_tokens_when_distances_are_equal():
    # orthogonal tokens: every pairwise distance is 1, so the calibrated scores are the attentions themselves
    tokens = torch.eye(6)
    received = torch.tensor([0.1, 0.5, 0.2, 0.9, 0.3, 0.05])
    assert adts(tokens, received, 3).tolist() == [1, 3, 4]


def test_adts_spreads_over_diverse_tokens_even_against_more_attention():
    # x0..x2 near-duplicates (attention 1), x3 = e1 and x4 = e2 (attention 0.5). First pick: the largest c_j · (distance
    # to j's nearest neighbour): x4 (0.5·1) over x3 (0.5·0.95) and the duplicates (≈0.001). Then c_j · d(x4, j):
    # x0..x2 score 1, x3 0.5 → x0 (first of the ties). Then min over {x4, x0}: duplicates ≈0.001, x3 0.5 → x3.
    tokens = torch.tensor([[1.0, 0, 0], [1, 0.05, 0], [1, -0.05, 0], [0, 1, 0], [0, 0, 1]])
    received = torch.tensor([1.0, 1.0, 1.0, 0.5, 0.5])
    assert adts(tokens, received, 3).tolist() == [0, 3, 4]  # attention alone would take [0, 1, 2]
    assert len(set(adts(torch.ones(5, 3), torch.ones(5), 4).tolist())) == 4  # never a token twice


def test_v2_calibration_multiplies_attention_by_event_relevance():
    tokens = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))
    received = torch.rand(3, 5, generator=torch.Generator().manual_seed(1))
    relevance = tokens @ tokens.mean(1).mean(0)  # x · (the mean of the segment's frame means)
    assert torch.allclose(calibration(tokens, received, "attn_div_v2"), received * relevance)
    assert torch.equal(calibration(tokens, received, "attn_div"), received)


def chain_video():
    """4 frames × 4 orthogonal tokens, except v at (0,0),(1,2),(2,1),(3,3) scaled 1..4 and w at (0,1),(1,0) scaled
    1, 3; position 3 of frames 0-2 and position 0 of frame 3 have the top attention."""
    tokens = torch.stack([torch.stack([one_hot(4 * t + p) for p in range(4)]) for t in range(4)])
    for t, p in enumerate([0, 2, 1, 3]):
        tokens[t, p] = one_hot(30, scale=t + 1.0)
    tokens[0, 1], tokens[1, 0] = one_hot(31), one_hot(31, scale=3.0)
    received = torch.full((4, 4), 0.1)
    received[[0, 1, 2, 3], [3, 3, 3, 0]] = 1.0
    return tokens, received


def test_a_token_persisting_across_frames_becomes_one_tree_at_its_first_position():
    tokens, _ = chain_video()
    free = torch.ones(4, 4, dtype=torch.bool)
    roots, tree, values = redundancy_trees(tokens, free, threshold=0.8, min_roots=0)
    # v's copies link frame by frame (cos 1 > 0.8) into one tree rooted at (0, 0); w's two copies root at (0, 1)
    assert tree[[0, 1, 2, 3], [0, 2, 1, 3]].tolist() == [0, 0, 0, 0]
    assert tree[[0, 1], [1, 0]].tolist() == [1, 1]
    assert torch.allclose(values[0], one_hot(30, scale=2.5))  # the uniform mean of 1v, 2v, 3v, 4v
    assert torch.allclose(values[1], one_hot(31, scale=2.0))  # (1w + 3w) / 2
    # every other token is dissimilar (cos 0) to the previous frame: its own root, its value unchanged
    assert int(roots.sum()) == 16 - 3 - 1
    others = roots.clone()
    others[0, :2] = False
    assert torch.equal(values[others.flatten()], tokens.reshape(16, -1)[others.flatten()])


def test_no_link_below_the_threshold_or_through_a_selected_token():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.7, 0.7141428])  # cos(a, b) = 0.7 < 0.8
    tokens = torch.stack([a, b, b, b])[:, None, :].repeat(1, 2, 1)
    tokens[:, 1] = torch.tensor([-1.0, 0.0])  # a second, opposite token per frame
    free = torch.ones(4, 2, dtype=torch.bool)
    free[2, 0] = False  # ADTS took b in frame 2: frame 3's b cannot link through it
    roots, tree, _ = redundancy_trees(tokens, free, threshold=0.8, min_roots=0)
    assert tree[:, 0].tolist() == [0, 2, 4, 6]  # a ↛ b (0.7), b → b except through the selected copy
    assert tree[:, 1].tolist() == [1, 1, 1, 1]  # the opposite token persists (cos 1)
    assert roots[:, 0].tolist() == [True, True, False, True]  # the selected token is no tree root


def test_too_many_links_raise_the_threshold_to_keep_the_merge_budget():
    base = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(4, 4, 16, generator=torch.Generator().manual_seed(1))
    tokens = base[None] + 0.05 * noise  # a static video: everything links at τ = 0.8
    free = torch.ones(4, 4, dtype=torch.bool)
    assert int(redundancy_trees(tokens, free, 0.8, min_roots=0)[0].sum()) == 4
    # τ becomes the k-th largest similarity (k = 16 − 8) and only links strictly above it stay: 8 + 1 roots, as the
    # official `padded_max_sims > soft_threshold`; the spatial clustering then brings them to the budget
    assert int(redundancy_trees(tokens, free, 0.8, min_roots=8)[0].sum()) == 9


def test_the_reducer_emits_selected_tokens_and_tree_means_at_their_rows():
    tokens, received = chain_video()
    # retention 3/4, α = 1/3: per frame 1 ADTS token (the top attention) + 2 merged; S·F = 8 = the 8 tree roots,
    # so the spatial clustering leaves the trees as they are
    reducer = FlashVID(retention=0.75, alpha=1 / 3, selection="attn_div", segment=False)
    out = reducer.reduce(EncodedVideo(tokens, ()), context(received))
    assert out.rows.tolist() == [0, 1, 2, 3, 4 + 1, 4 + 3, 8 + 0, 8 + 2, 8 + 3, 12 + 0, 12 + 1, 12 + 2]
    assert len(out) == reducer.visual_tokens(4, 4) == 12
    assert torch.allclose(out.tokens[0], one_hot(30, scale=2.5)) and torch.allclose(out.tokens[1], one_hot(31, scale=2))
    assert torch.equal(out.tokens[2:], tokens.reshape(16, -1)[out.rows[2:]])
    assert out.source is not None and out.llm_prune is None


def test_no_tree_crosses_a_segment_cut():
    # frames 0-1 = [e0, e1, e2, s·v], frames 2-3 = [e4, e5, e6, s·v], s = 1..4 (v = e7): frame-mean cosines 5/√28 ≈
    # 0.94, 6/√84 ≈ 0.65 and 15/√228 ≈ 0.99, so DySeg (τ = 0.9) cuts between frames 1 and 2 only. α = 0 and
    # retention 1/2: no ADTS, 2 merged tokens a frame, 4 a segment. In each segment every frame-1 token links to
    # its frame-0 copy (cos 1): 4 trees at frame 0, as many as the budget, so they stay as they are. v persists
    # across the cut, yet its tree does: (1v + 2v)/2 at row 3, (3v + 4v)/2 at row 8 + 3.
    eye = torch.eye(8)
    tokens = torch.stack([torch.stack([*(eye[[0, 1, 2]] if t < 2 else eye[[4, 5, 6]]), (t + 1.0) * eye[7]])
                          for t in range(4)])
    reducer = FlashVID(retention=0.5, alpha=0.0, selection="attn_div", min_segments=1)
    out = reducer.reduce(EncodedVideo(tokens, ()), context(torch.ones(4, 4)))
    assert out.rows.tolist() == [0, 1, 2, 3, 8, 9, 10, 11]
    assert torch.equal(out.tokens, torch.stack([eye[0], eye[1], eye[2], 1.5 * eye[7],
                                                eye[4], eye[5], eye[6], 3.5 * eye[7]]))


def test_dpc_knn_and_apportion():
    g = torch.Generator().manual_seed(0)
    points = torch.cat([torch.randn(4, 8, generator=g) * 0.01, 5 + torch.randn(3, 8, generator=g) * 0.01])
    assign, centres = dpc_knn(points, 2)
    assert assign[:4].unique().numel() == 1 and assign[4:].unique().numel() == 1 and assign[0] != assign[4]
    assert assign[centres].tolist() == [0, 1]  # every centre in its own cluster
    assert apportion([6, 5, 5, 5], 8) == [2, 2, 2, 2]  # quotas 2.29, 1.90 ×3: the remainders go to the 1.90s
    assert apportion([3, 1, 2, 2], 8) == [3, 1, 2, 2] and apportion([0, 0], 0) == [0, 0]
    assert apportion([2, 2, 2], 4) == [2, 1, 1]  # quotas 4/3 each: the one remainder token to the earliest frame
    # twin points tie in density: the earlier is the denser, so it is the centre and its twin scores δ = 0
    twins = torch.tensor([[0.0, 0], [0, 0], [5, 5], [5, 5]])
    assign, centres = dpc_knn(twins, 2)
    assert centres.tolist() == [0, 2] and assign.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("t,m,retention,alpha,selection", [
    (16, 16, 0.25, 0.7, "attn_div_v2"), (5, 16, 0.1, 0.7, "attn_div"), (8, 49, 0.2, 0.7, "attn_div_v2"),
    (1, 16, 0.25, 0.7, "attn_div_v2"), (3, 1, 0.5, 0.7, "attn_div"), (6, 12, 0.5, 0.0, "attn_div_v2"),
    (7, 9, 1.0, 0.7, "attn_div"),
])
def test_the_budget_is_exact_and_rows_are_in_order(t, m, retention, alpha, selection):
    g = torch.Generator().manual_seed(t * 100 + m)
    tokens = torch.randn(t, m, 24, generator=g) + torch.randn(1, m, 24, generator=g)  # some temporal redundancy
    received = torch.rand(t, m, generator=g)
    reducer = FlashVID(retention=retention, alpha=alpha, selection=selection)
    out = reducer.reduce(EncodedVideo(tokens, ()), context(received))
    assert len(out) == reducer.visual_tokens(t, m)
    rows = out.rows.tolist()
    assert rows == sorted(set(rows)) and 0 <= rows[0] and rows[-1] < t * m


def test_arguments_hooks_and_in_llm_pruning():
    for bad in [dict(retention=0.0), dict(alpha=1.5), dict(temporal_threshold=2.0), dict(selection="attn"),
                dict(min_segments=0), dict(llm_layer=-1), dict(llm_layer=20, llm_keep=0.0), dict(expansion=0)]:
        with pytest.raises(ValueError, match="flashvid"):
            FlashVID(**bad)
    assert FlashVID().requires == frozenset({"vision_attention"}) and FlashVID.emits_rows
    official = FlashVID(expansion=1.25, llm_layer=20)
    assert official.requires == frozenset({"vision_attention", "llm_prune"})
    assert official.visual_tokens(32, 196) == 32 * 62
    tokens = torch.randn(2, 16, 8, generator=torch.Generator().manual_seed(0))
    out = official.reduce(EncodedVideo(tokens, ()), context(torch.rand(2, 16, generator=torch.Generator())))
    assert out.llm_prune == LlmPrune.fastv(20, 0.3) and len(out) == 2 * 5
