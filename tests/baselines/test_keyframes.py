"""Keyframe selectors: top-k by relevance, AKS judge-and-split, BOLT inverse-CDF sampling; all of them (and AdaRD-Key)
on the tiny CLIP."""

import numpy as np
import pytest

from baselines.adardkey import AdaRDKey
from baselines.aks import AKS, aks_indices, judge_and_split
from baselines.bolt import BOLT, inverse_cdf_indices
from baselines.relevance import relevance
from baselines.topk import TopK, top_k
from harness.core.records import Frames, Sample, VideoMeta


def test_top_k_is_time_ordered_highest():
    scores = np.array([0.1, 0.9, 0.3, 0.8, 0.2, 0.95])
    assert top_k(scores, 3) == [1, 3, 5]


def aks_case():
    scores = np.zeros(64)
    scores[[3, 10, 20, 25]] = 1.0  # first half: four sharp peaks on a flat floor
    scores[32:] = 0.5
    scores[40] = 1.0  # second half: one peak on a high plateau
    return scores


def test_aks_splits_where_the_scores_say():
    scores = aks_case()
    # whole video: mean(top-4) − mean = 1 − 20.5/64 = 0.68 ≤ 0.8 → split; first half: 1 − 4/32 > 0.8 → keep;
    # second half: 0.625 − 16.5/32 → split again, down to depth 2
    assert judge_and_split(scores, m=4, t1=0.8, t2=-100, depth=2) == [(0, 32, 1), (32, 48, 2), (48, 64, 2)]
    # each kept bin at depth d gives its top M / 2^d: 2 from the peaked half, 1 from each plateau quarter
    assert aks_indices(scores, m=4, t1=0.8, depth=2) == [3, 10, 40, 48]


def test_aks_keeps_a_peaked_video_whole():
    scores = np.zeros(256)
    peaks = np.arange(0, 256, 8)
    scores[peaks] = 1.0  # 32 peaks: mean(top-32) − mean = 1 − 0.125 > 0.8
    assert judge_and_split(scores, m=32, t1=0.8, t2=-100, depth=5) == [(0, 256, 0)]
    assert aks_indices(scores, m=32) == peaks.tolist()


def test_aks_short_video_keeps_everything():
    assert aks_indices(np.random.default_rng(0).random(20), m=32) == list(range(20))


def test_bolt_follows_the_inverse_cdf():
    scores = np.r_[np.ones(50), np.zeros(50)]  # all mass on the first half, uniform there
    # CDF[i] = (i + 1) / 50 for i < 50; quantiles 1/4 … 3/4 = .25 .417 .583 .75 → first i with CDF ≥ q
    assert inverse_cdf_indices(scores, n=4, power=3.0) == [12, 20, 29, 37]


def test_bolt_power_sharpens_toward_relevant_frames():
    ramp = np.linspace(0, 1, 200)
    mild, sharp = inverse_cdf_indices(ramp, 16, 1.0), inverse_cdf_indices(ramp, 16, 3.0)
    assert np.mean(sharp) > np.mean(mild) and len(mild) == len(sharp) == 16


def test_bolt_tops_up_duplicates_to_n():
    scores = np.zeros(100)
    scores[70] = 1.0  # every quantile lands on frame 70
    picked = inverse_cdf_indices(scores, n=8, power=3.0)
    assert len(picked) == 8 and 70 in picked


def test_selectors_run_with_tiny_clip():
    rng = np.random.default_rng(0)
    n = 40
    frames = Frames(tuple(range(0, 10 * n, 10)), tuple(float(i) for i in range(n)),
                    rng.integers(0, 256, (n, 48, 64, 3), dtype=np.uint8))
    meta = VideoMeta("v.mp4", num_frames=10 * n, fps=10.0, width=64, height=48)
    sample = Sample(id="s", task="t", video="v.mp4", question="What color is the car?", options=("a", "b"), answer=0)
    for selector in (TopK(k=8, encoder="tiny-clip"), AKS(max_frames=8, encoder="tiny-clip"),
                     BOLT(n=8, encoder="tiny-clip")):
        assert selector.plan(meta) == frames.indices  # the 1 fps pool
        chosen = selector.select(sample, meta, frames)
        assert set(chosen.indices) <= set(frames.indices) and list(chosen.indices) == sorted(chosen.indices)
        assert 1 <= len(chosen.indices) <= 8 and len(chosen.scores) == len(chosen.indices)
    top = TopK(k=8, encoder="tiny-clip").select(sample, meta, frames)
    assert min(top.scores) >= max(s for s in _all_scores(sample, frames) if s not in top.scores) - 1e-9
    adard = AdaRDKey(k=8, encoder="tiny-clip").select(sample, meta, frames)  # k exact; its scores the shared relevance
    assert len(adard.indices) == 8 and list(adard.indices) == sorted(adard.indices) and adard.method == "adardkey"
    cosines = relevance("tiny-clip", sample, frames)
    assert adard.scores == pytest.approx([cosines[frames.indices.index(i)] for i in adard.indices])


def _all_scores(sample, frames):
    from baselines.relevance import relevance

    return relevance("tiny-clip", sample, frames).tolist()


@pytest.mark.parametrize("bad", [dict(k=0)])
def test_invalid_settings(bad):
    with pytest.raises(ValueError, match="k must be"):
        TopK(**bad)


def test_aks_never_returns_zero_frames():
    scores = np.random.default_rng(1).random(300)
    picked = aks_indices(scores, m=8, depth=5)  # official code: bins at depth ≥ 4 would get ⌊8/16⌋ = 0
    assert len(picked) == 8
