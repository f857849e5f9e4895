"""Key clips (F2C): anchors by relevance peaks, contiguous clips around them, merged overlaps topped up to the
frame count, and the per-frame grid downscale that keeps the visual-token budget fixed."""

import numpy as np
import pytest

import baselines.relevance
from baselines.keyclips import KeyClips, clip_window, expand_clips, local_maxima, peak_anchors, temporal_kmeans
from baselines.topk import TopK, top_k
from harness.core.records import Frames, Sample, VideoMeta

SAMPLE = Sample(id="s", task="t", video="v.mp4", question="Which word?", options=("a", "b"), answer=0)


def pool(n: int) -> tuple[VideoMeta, Frames]:
    """A 1 fps pool of n frames from a 10 fps video (frame numbers 0, 10, 20, ...)."""
    meta = VideoMeta("v.mp4", num_frames=10 * n, fps=10.0, width=16, height=16)
    frames = Frames(tuple(range(0, 10 * n, 10)), tuple(float(i) for i in range(n)), np.zeros((n, 16, 16, 3), np.uint8))
    return meta, frames


def runs(positions: list[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive positions as (first, last)."""
    out: list[tuple[int, int]] = []
    for p in positions:
        if out and p == out[-1][1] + 1:
            out[-1] = (out[-1][0], p)
        else:
            out.append((p, p))
    return out


@pytest.fixture
def scored(monkeypatch):
    """select() with relevance scores given by the test instead of an encoder."""
    def use(scores):
        monkeypatch.setattr(baselines.relevance, "relevance", lambda *_args, **_kw: np.asarray(scores, float))
    return use


def test_local_maxima_count_a_plateau_once_and_the_ends():
    #            0    1    2    3    4    5    6    7
    s = np.array([.5, .1, .3, .3, .2, .9, .4, .6])
    assert local_maxima(s) == [0, 2, 5, 7]  # 0 ≥ 1; plateau 2-3 at its first; 5; 7 > 6 at the end


def test_temporal_kmeans_groups_by_time():
    # three bursts of peaks: {0, 2, 4}, {50, 52}, {98}: the exact (DP) optimum puts one cluster on each
    assert temporal_kmeans([0, 2, 4, 50, 52, 98], 3) == [[0, 2, 4], [50, 52], [98]]


def test_peak_anchors_take_the_best_peak_of_each_temporal_cluster():
    s = np.zeros(100)
    s[[10, 14, 18]] = [.5, .9, .6]  # burst A: 14 is its best
    s[[60, 64]] = [.8, .7]  # burst B: 60
    s[95] = .4  # burst C alone
    # top-3 would take 14, 60, 64 (two from B); one anchor per cluster instead
    assert peak_anchors(s, 3) == [14, 60, 95]
    assert top_k(s, 3) == [14, 60, 64]


def test_few_peaks_are_topped_up_with_the_most_relevant_frames():
    s = np.linspace(0, 1, 20)  # one peak, the last frame
    assert peak_anchors(s, 3) == [17, 18, 19]


def test_clip_windows_are_centred_and_stay_inside():
    assert list(clip_window(10, 4, 50)) == [9, 10, 11, 12]  # (L−1)//2 before, the rest after
    assert list(clip_window(10, 3, 50)) == [9, 10, 11]
    assert list(clip_window(0, 4, 50)) == [0, 1, 2, 3]  # shifted right at the start
    assert list(clip_window(49, 4, 50)) == [46, 47, 48, 49]  # and left at the end


def test_disjoint_clips_are_contiguous_runs_around_their_anchors():
    s = np.zeros(40)
    assert expand_clips(s, [5, 20, 33], 4) == [4, 5, 6, 7, 19, 20, 21, 22, 32, 33, 34, 35]
    assert runs(expand_clips(s, [5, 20, 33], 4)) == [(4, 7), (19, 22), (32, 35)]


def test_overlapping_clips_merge_and_the_freed_frames_grow_the_run_by_relevance():
    s = np.zeros(30)
    s[[3, 11]] = [.5, .2]  # the merged run's outer neighbours: 3 (left) beats 11 (right) ... then 2 vs 11
    s[2] = .1
    # anchors 5 and 6, L = 4: windows 4-7 and 5-8 → union 4-8 (5 frames, none twice); 8 are due:
    # grow: 3 (.5 > right 9's 0), then 2 (.1 > 9's 0), then 9 vs 1: both 0 → earlier (1) ... → 1, 2, 3, 4-8
    kept = expand_clips(s, [5, 6], 4)
    assert len(kept) == len(set(kept)) == 8
    assert kept == [1, 2, 3, 4, 5, 6, 7, 8] and runs(kept) == [(1, 8)]


def test_a_short_pool_gives_every_frame():
    assert expand_clips(np.zeros(6), [1, 4], 4) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("anchors,clip_len,side", [(16, 4, 4), (8, 4, 4), (4, 16, 4), (32, 4, 14), (4, 9, 3),
                                                   (16, 1, 4), (6, 4, 14)])
def test_the_token_budget_is_the_anchors_at_full_resolution(anchors, clip_len, side, scored):
    # frames × (side / √L)² = anchors · L · side² / L = anchors · side², the budget of `anchors` full frames
    rng = np.random.default_rng(anchors * clip_len)
    meta, frames = pool(anchors * clip_len + 37)
    scored(rng.random(len(frames)))
    selector = KeyClips(anchors=anchors, clip_len=clip_len, encoder="tiny-clip")
    chosen = selector.select(SAMPLE, meta, frames)
    assert len(chosen.indices) == len(set(chosen.indices)) == anchors * clip_len
    downscale = chosen.grid_downscale or 1
    assert downscale ** 2 == clip_len and side % downscale == 0
    assert len(chosen.indices) * (side // downscale) ** 2 == anchors * side ** 2
    frames_out, per_frame = selector.frame_budget(side * side)  # what the spec listing shows before a run
    assert frames_out == len(chosen.indices) and frames_out * per_frame == anchors * side ** 2


def test_every_clip_frame_lies_in_a_run_that_holds_an_anchor(scored):
    rng = np.random.default_rng(3)
    scores = rng.random(200)
    selector = KeyClips(anchors=8, clip_len=4, encoder="tiny-clip")
    anchors = selector.choose_anchors(scores)
    kept = selector.choose(scores)
    assert len(kept) == 32 and set(anchors) <= set(kept)
    for first, last in runs(kept):
        assert any(first <= a <= last for a in anchors)


def test_clip_length_one_is_top_k(scored):
    rng = np.random.default_rng(7)
    meta, frames = pool(50)
    scores = rng.random(50)
    scored(scores)
    clips = KeyClips(anchors=8, clip_len=1, anchor="topk", encoder="tiny-clip", query="question")
    topk = TopK(k=8, encoder="tiny-clip")
    got, want = clips.select(SAMPLE, meta, frames), topk.select(SAMPLE, meta, frames)
    assert got.indices == want.indices and got.scores == want.scores
    assert got.grid_downscale is None and clips.requires == frozenset()  # full encode, no hook needed


def test_the_selection_asks_for_the_coarse_encode(scored):
    meta, frames = pool(80)
    scored(np.random.default_rng(0).random(80))
    selector = KeyClips(anchors=4, clip_len=4, encoder="tiny-clip")
    chosen = selector.select(SAMPLE, meta, frames)
    assert chosen.grid_downscale == 2 and selector.requires == frozenset({"coarse_encode"})
    assert set(chosen.indices) <= set(frames.indices) and list(chosen.indices) == sorted(chosen.indices)
    assert len(chosen.scores) == len(chosen.indices)
    assert KeyClips(anchors=4, clip_len=4, downscale=1, encoder="tiny-clip").requires == frozenset()


@pytest.mark.parametrize("bad,match", [
    ({"anchors": 0}, "anchors and clip_len must be >= 1"),
    ({"clip_len": 0}, "anchors and clip_len must be >= 1"),
    ({"downscale": 0}, "downscale must be >= 1"),
    ({"clip_len": 3}, "clip_len 3 is not a square"),
])
def test_invalid_settings(bad, match):
    with pytest.raises(ValueError, match=f"^keyclips: {match}"):
        KeyClips(encoder="tiny-clip", **bad)
    KeyClips(encoder="tiny-clip", clip_len=3, downscale=2)  # explicit: allowed


def test_a_backbone_without_the_hook_fails_in_the_preflight_in_one_line():
    from harness.core.config import ConfigError
    from harness.model.preflight import check_combination
    from harness.model.specs import Component, ModelSpec

    def spec(backbone, **args):
        return ModelSpec("probe", "", Component(backbone), Component("keyclips", {"encoder": "tiny-clip", **args}),
                         Component("none"))

    with pytest.raises(ConfigError) as info:
        check_combination(spec("fixed-cost"))
    message = str(info.value)
    assert "\n" not in message and "selector 'keyclips' needs backbone hook(s) coarse_encode" in message
    assert "backbone 'fixed-cost' does not offer" in message
    for backbone in ("tiny", "canary", "qwen25vl", "llava-video"):
        check_combination(spec(backbone))
    check_combination(spec("fixed-cost", clip_len=1))  # clip length 1: full encode, no hook
