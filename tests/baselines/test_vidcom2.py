"""VidCom2 (EMNLP 2025): frame budgets from frame uniqueness and within-frame outlier tokens, pinned on hand-built
videos whose scores are worked out by hand, and the exact budget."""

from __future__ import annotations

import math

import pytest
import torch

from baselines.apportion import largest_remainder
from baselines.vidcom2 import VidCom2, frame_budgets, frame_retention, similarities, total_budget
from harness.core.records import EncodedVideo


def G(d2: float) -> float:
    """The official multi-scale Gaussian kernel at squared distance d2 (alphas 1/8 … 2)."""
    return sum(math.exp(-d2 / (2 * a)) for a in (0.125, 0.25, 0.5, 1.0, 2.0))


def hand_video(frames: list[list[tuple[float, float]]]) -> EncodedVideo:
    """Tokens [T, M, 4]: channels 0-1 carry the hand-chosen 2-D signal at assorted lengths (the kernel works on unit
    vectors), channels 2-3 are ±10 noise, the high-variance half that VidCom2 leaves out of its scores."""
    t, m = len(frames), len(frames[0])
    signal = torch.tensor(frames, dtype=torch.float32)
    signal = signal * (0.5 + torch.arange(t * m).reshape(t, m, 1) % 3)  # lengths 0.5, 1.5, 2.5: normalised away
    index = torch.arange(t * m).reshape(t, m)
    noise = torch.stack([10.0 * (1 - 2 * (index % 2)), 10.0 * (1 - 2 * ((index // 2) % 2))], dim=-1)
    return EncodedVideo(torch.cat([signal, noise], dim=-1), tuple(float(i) for i in range(t)))


def kept_per_frame(rows: torch.Tensor, frames: int, per_frame: int) -> list[list[int]]:
    return [[int(r) % per_frame for r in rows if int(r) // per_frame == f] for f in range(frames)]


E, N = (1.0, 0.0), (0.0, 1.0)


def test_similarities_to_the_video_and_frame_means_by_hand():
    # frame 0 = [e, e], frame 1 = [e, n]: video mean (3/4, 1/4), frame means (1, 0) and (1/2, 1/2)
    # ‖e − v‖² = 1/8, ‖n − v‖² = 9/8; in frame 0 each token sits on its mean (0), in frame 1 both are 1/2 away
    video, frame = similarities(hand_video([[E, E], [E, N]]).tokens)
    assert torch.allclose(video, torch.tensor([[G(1 / 8), G(1 / 8)], [G(1 / 8), G(9 / 8)]]), atol=1e-5)
    assert torch.allclose(frame, torch.tensor([[G(0), G(0)], [G(1 / 2), G(1 / 2)]]), atol=1e-5)
    # at 50%: frame 1 (uniqueness −(G(1/8) + G(9/8))/2 > −G(1/8)) takes r·(1 + 1 − 1/2)·M = 1.5 → 1 token, frame 0
    # 0.5 → its floor of 1; frame 1 keeps n, the lower s_video + s_frame (G(9/8) + G(1/2) < G(1/8) + G(1/2))
    visual = VidCom2(keep_ratio=0.5).reduce(hand_video([[E, E], [E, N]]), None)
    assert visual.rows.tolist() == [0, 3]


def test_the_frame_unlike_the_others_gets_the_largest_budget():
    # five frames of 20 identical tokens, frame 2 along n, the others along e: video mean (4/5, 1/5), so
    # ‖e − v‖² = 2/25 and ‖n − v‖² = 32/25; uniqueness −G(2/25) ×4 and −G(32/25) for frame 2
    encoded = hand_video([[N if f == 2 else E] * 20 for f in range(5)])
    video, _ = similarities(encoded.tokens)
    uniqueness = -video.mean(dim=1)
    expected = torch.tensor([-G(32 / 25) if f == 2 else -G(2 / 25) for f in range(5)])
    assert torch.allclose(uniqueness, expected, atol=1e-5)
    # G(2/25) − G(32/25) ≈ 2.5 ≫ τ = 0.01: σ = one-hot on frame 2, r_t = 0.25·(1 + σ_t − 1/5), so the quotas are
    # 0.25·0.8·20 = 4 for the others and 0.25·1.8·20 = 9 for frame 2, 25 = 25% of 100 in all
    visual = VidCom2(keep_ratio=0.25).reduce(encoded, None)
    assert [len(k) for k in kept_per_frame(visual.rows, 5, 20)] == [4, 4, 9, 4, 4]
    assert len(visual) == VidCom2(keep_ratio=0.25).visual_tokens(5, 20) == 25


def test_the_budgets_follow_the_softmax_formula_on_a_hand_case():
    # uniqueness τ·ln(1, 2, 5): σ = (1/8, 2/8, 5/8), mean 1/3, so r_t = r·(19/24, 22/24, 31/24)
    uniqueness = 0.01 * torch.log(torch.tensor([1.0, 2.0, 5.0]))
    retention = frame_retention(uniqueness, 0.25, 0.01)
    assert torch.allclose(retention, 0.25 * torch.tensor([19, 22, 31], dtype=torch.float64) / 24)
    # M = 16: quotas 19/6, 22/6, 31/6 (3.17, 3.67, 5.17) round to 3, 4, 5 = 12 = 25% of 48, as the official rounds
    assert frame_budgets(uniqueness, 16, 0.25, 0.01) == [3, 4, 5]
    # M = 24 (r·M = 6): quotas exactly 4.75, 5.5, 7.75 → 18 by largest remainders (floors 4, 5, 7 + frames 0 and 2)
    assert frame_budgets(uniqueness, 24, 0.25, 0.01) == [5, 5, 8]
    # a higher temperature flattens the allocation towards r·M each
    assert frame_budgets(uniqueness, 16, 0.25, 10.0) == [4, 4, 4]


def test_the_budgets_sum_to_the_total_exactly_where_the_official_rounding_drifts():
    drifted = 0
    for seed in range(20):
        uniqueness = torch.randn(7, generator=torch.Generator().manual_seed(seed)) * 0.02
        quotas = (frame_retention(uniqueness, 0.3, 0.01) * 11).tolist()
        budgets = frame_budgets(uniqueness, 11, 0.3, 0.01)
        assert sum(budgets) == total_budget(7, 11, 0.3) == round(0.3 * 77)
        assert all(abs(k - q) < 1 for k, q in zip(budgets, quotas))  # nothing capped here: within 1 of its quota
        drifted += sum(max(1, round(q)) for q in quotas) != sum(budgets)  # the official per-frame rounding
    assert drifted > 0  # the exact total is not what rounding each frame would have given anyway


def test_equal_remainders_go_to_the_more_unique_frames():
    # one stand-out frame saturates the softmax and leaves the other 15 the same quota 0.25·(15/16)·16 = 3.75:
    # 15·3.75 + 7.75 = 64: floors 15·3 + 7 = 52 leave 12 extra tokens for 16 equal .75-remainders, so four frames
    # stay at 3 — the four least unique
    uniqueness = torch.tensor([-4.0, -4.5, -4.2, -4.9, 0.0, -4.1, -4.8, -4.3, -4.6, -4.4, -4.05, -4.7, -4.15, -4.25,
                               -4.35, -4.45])
    budgets = frame_budgets(uniqueness, 16, 0.25, 0.01)
    assert budgets[4] == 8 and sum(budgets) == 64
    assert [t for t, k in enumerate(budgets) if k == 3] == [3, 6, 8, 11]  # uniqueness −4.9, −4.8, −4.6, −4.7
    # the official per-frame rounding would keep 8 + 15·4 = 68
    assert sum(round(q) for q in (frame_retention(uniqueness, 0.25, 0.01) * 16).tolist()) == 68
    assert largest_remainder([1.5, 1.5, 1.5], 5, 1, 4, priority=[0.0, 2.0, 1.0]) == [1, 2, 2]
    assert largest_remainder([1.5, 1.5, 1.5], 5, 1, 4) == [2, 2, 1]  # no priority: the earlier frames


def test_a_frame_is_capped_at_its_tokens_and_the_excess_goes_to_the_others():
    # 90% of 2 × 10 with a one-hot σ: quotas 0.9·0.5·10 = 4.5 and 0.9·1.5·10 = 13.5; frame 1 can keep only its 10
    assert largest_remainder([4.5, 13.5], 18, 1, 10) == [8, 10]
    assert frame_budgets(torch.tensor([0.0, 1.0]), 10, 0.9, 0.01) == [8, 10]
    # one token per frame at least, even when the ratio asks for fewer
    assert largest_remainder([0.1, 0.2, 2.7], 3, 1, 8) == [1, 1, 1]
    assert total_budget(4, 16, 0.01) == 4 and total_budget(4, 16, 1.0) == 64 and total_budget(0, 16, 0.25) == 0


def test_within_a_frame_the_most_distinctive_tokens_are_kept_in_order():
    # four frames of 8 tokens along e with two along n at positions t and t + 3: every frame equally unique, so
    # 25% gives 2 each, and the two n tokens (far from both the video's and the frame's mean) are the ones kept
    frames = [[N if i in (t, t + 3) else E for i in range(8)] for t in range(4)]
    visual = VidCom2(keep_ratio=0.25).reduce(hand_video(frames), None)
    assert kept_per_frame(visual.rows, 4, 8) == [[t, t + 3] for t in range(4)]
    assert visual.rows.tolist() == sorted(visual.rows.tolist())


def test_a_token_counts_as_distinctive_against_its_own_frame_too():
    # frames 0-2 all e, frame 3 = seven n and one e (position 5), 8 tokens each: video mean (25/32, 7/32), frame 3's
    # mean (1/8, 7/8). Frame 3's n tokens are the far ones from the video (‖n − v‖² = 1250/1024) but sit on their
    # frame's mean (1/32); its e is near the video (98/1024) but alone in its frame (98/64). Summed, e is the lower:
    # G(98/1024) + G(98/64) ≈ 5.76 < G(1250/1024) + G(1/32) ≈ 6.44, so e is the one token frame 3 keeps at 12.5%
    # (quotas 0.125·(1 + σ_t − 1/4)·8 = 0.75, 0.75, 0.75, 1.75 with σ one-hot on frame 3 → 1, 1, 1, 1)
    assert G(98 / 1024) + G(98 / 64) < G(1250 / 1024) + G(1 / 32) - 0.5
    frames = [[E] * 8] * 3 + [[E if i == 5 else N for i in range(8)]]
    visual = VidCom2(keep_ratio=0.125).reduce(hand_video(frames), None)
    assert kept_per_frame(visual.rows, 4, 8)[3] == [5]
    assert len(visual) == 4


@pytest.mark.parametrize("shape", [(1, 16, 8), (3, 7, 5), (16, 16, 32), (5, 1, 4), (9, 13, 3)])
@pytest.mark.parametrize("keep_ratio", [0.01, 0.1, 0.25, 0.6, 1.0])
def test_visual_tokens_is_what_reduce_emits(shape, keep_ratio):
    encoded = EncodedVideo(torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape))),
                           tuple(float(i) for i in range(shape[0])))
    reducer = VidCom2(keep_ratio=keep_ratio)
    visual = reducer.reduce(encoded, None)
    assert len(visual) == reducer.visual_tokens(shape[0], shape[1])
    assert visual.rows.tolist() == sorted(set(visual.rows.tolist()))  # distinct encoded rows, in time order
    assert torch.equal(visual.tokens, encoded.flat[visual.rows])
    assert all(len(k) >= 1 for k in kept_per_frame(visual.rows, shape[0], shape[1]))


def test_equal_token_scores_keep_the_earlier_token():
    # four frames of 8 tokens along e with n at positions 2 and 5 (the same length, so the same normalised token):
    # every frame equally unique, 12.5% keeps one token each, and the two n tie for the lowest score → position 2
    frames = [[N if i in (2, 5) else E for i in range(8)] for _ in range(4)]
    visual = VidCom2(keep_ratio=0.125).reduce(hand_video(frames), None)
    assert kept_per_frame(visual.rows, 4, 8) == [[2]] * 4


def test_arguments_are_validated():
    for bad in ({"keep_ratio": 0.0}, {"keep_ratio": 1.5}):
        with pytest.raises(ValueError, match="vidcom2: keep_ratio"):
            VidCom2(**bad)
    with pytest.raises(ValueError, match="vidcom2: temperature"):
        VidCom2(temperature=0.0)
    assert VidCom2().keep_ratio == 0.25 and VidCom2().temperature == 0.01 and VidCom2.emits_rows
