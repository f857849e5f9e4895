"""DKS on hand-built embeddings: relevance order, τ suppression, K cap, relevance floor, fill-up, time order."""

import pytest
import torch

from harness.vilamp.dks import dks, fill_to_k


def unit(*xs: float) -> list[float]:
    v = torch.tensor(xs, dtype=torch.float32)
    return (v / v.norm()).tolist()


Q = torch.tensor([1.0, 0.0, 0.0])


def test_greedy_by_relevance_then_sorted_by_time():
    # relevance (cos to Q): frame 3 > frame 0 > frame 2 > frame 1, all mutually dissimilar enough for τ = 0.99
    frames = torch.tensor([unit(0.8, 0.6, 0.0), unit(0.1, 0.0, 1.0), unit(0.5, -0.8, 0.3), unit(0.95, 0.0, -0.3)])
    assert dks(frames, Q, k=2, tau=0.99) == [0, 3]  # the two most relevant, reported in time order
    assert dks(frames, Q, k=1, tau=0.99) == [3]
    assert dks(frames, Q, k=10, tau=0.99) == [0, 1, 2, 3]  # K cap above N: every frame


def test_near_duplicate_of_a_keyframe_is_skipped():
    a = unit(0.9, 0.1, 0.0)
    near_a = unit(0.88, 0.12, 0.01)  # cos(a, near_a) ≈ 0.9998 > τ
    other = unit(0.5, 0.0, 0.8)  # less relevant than near_a, but different
    frames = torch.tensor([near_a, a, other])
    assert dks(frames, Q, k=2, tau=0.85) == [1, 2]  # near_a (2nd by relevance) is suppressed by a
    assert dks(frames, Q, k=2, tau=0.99999) == [0, 1]  # with τ above their cosine both stay


def test_threshold_is_strict_greater():
    # cos(f0, f1) is float32(0.6) exactly; τ equal to it must keep f1 (official: f2f > f2f_thrd)
    frames = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    q = torch.tensor([1.0, 0.0])
    tau = float(torch.tensor(0.6))
    assert dks(frames, q, k=2, tau=tau) == [0, 1]
    assert dks(frames, q, k=2, tau=0.59) == [0]


def test_relevance_floor_stops_the_walk():
    frames = torch.tensor([unit(0.9, 0.3, 0.0), unit(0.1, 0.99, 0.0), unit(0.0, 0.3, 0.9)])  # cos 0.95, 0.10, 0.0
    assert dks(frames, Q, k=3, tau=0.99) == [0, 1, 2]
    assert dks(frames, Q, k=3, tau=0.99, floor=0.2) == [0]


def test_fill_up_reaches_exactly_k_over_the_largest_gap():
    frames = torch.zeros(20, 3)
    frames[:, 1] = 1.0  # all identical: the greedy keeps only the first (stable order: frame 0)
    frames[0] = torch.tensor(unit(0.7, 0.7, 0.0))
    picks = dks(frames, Q, k=4, tau=0.85)
    assert picks == [0, 1]  # frame 0 (most relevant) and one of the identical frames (earliest)
    filled = dks(frames, Q, k=4, tau=0.85, fill=True)
    assert len(filled) == 4 and set(picks) <= set(filled) and filled == sorted(filled)
    # the two extra frames split the 18-frame gap 2..19 into near-equal parts
    assert filled == [0, 1, 8, 14]


def test_fill_to_k_edge_cases():
    assert fill_to_k([], 5, 8) == [0, 1, 2, 3, 4]  # N ≤ K: every frame is a keyframe
    assert fill_to_k([0, 1, 2], 10, 3) == [0, 1, 2]  # already K
    uniform = fill_to_k([], 100, 4)  # nothing picked: near-uniform spacing
    assert len(uniform) == 4 and max(b - a for a, b in zip(uniform, uniform[1:])) <= 34


def test_ties_keep_time_order_and_bad_shapes_fail():
    frames = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert dks(frames, torch.tensor([1.0, 1.0]), k=1, tau=0.99) == [0]  # equal relevance: earliest first
    with pytest.raises(ValueError, match="frame_emb"):
        dks(frames, torch.tensor([1.0, 0.0, 0.0]))


def test_no_n_by_n_matrix_large_n():
    # 20K × 64 embeddings: an N×N float matrix would be 1.6 GB; DKS runs in O(N·D + K·D)
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(20_000, 64, generator=g)
    picks = dks(frames, torch.randn(64, generator=g), k=32, tau=0.85)
    assert len(picks) == 32 and picks == sorted(picks)
