import numpy as np
import pytest

from baselines.uniform import Uniform, fps_indices, linspace_indices
from harness.core.records import VideoMeta


def meta(frames, fps=30.0):
    return VideoMeta(path="x.mp4", num_frames=frames, fps=fps, width=64, height=64)


def test_linspace_matches_lmms_eval_convention():
    assert linspace_indices(100, 5) == tuple(np.linspace(0, 99, 5, dtype=int))
    assert linspace_indices(100, 5) == (0, 24, 49, 74, 99)
    assert linspace_indices(3, 8) == (0, 1, 2)  # clamped to what the video has
    assert linspace_indices(0, 8) == ()


@pytest.mark.parametrize("total,n", [(1, 1), (7, 3), (1000, 16), (10_000, 600)])
def test_uniform_indices_sorted_unique_in_range(total, n):
    idx = Uniform(n=n).plan(meta(total))
    assert list(idx) == sorted(set(idx)) and len(idx) == min(n, total)
    assert idx[0] == 0 and idx[-1] == total - 1


def test_fps_mode_one_per_second_then_capped():
    assert fps_indices(meta(300), 1.0, None) == tuple(range(0, 300, 30))
    capped = Uniform(fps=1.0, max_frames=4).plan(meta(300))
    assert capped == (0, 90, 180, 270)
    assert Uniform(fps=2.0, max_frames=None).plan(meta(10, fps=1.0)) == tuple(range(10))  # never above the video


def test_fps_mode_on_a_variable_rate_stream_picks_by_time():
    """10 s at 30 fps then 10 s at 5 fps (average 17.5): by frame count the 1 fps picks drift into the wrong
    seconds; by presentation time each is the frame nearest k seconds."""
    times = tuple([i / 30 for i in range(300)] + [10 + i / 5 for i in range(50)])
    vfr = VideoMeta(path="x.mp4", num_frames=350, fps=17.5, width=64, height=64, frame_times_s=times)
    picks = fps_indices(vfr, 1.0, None)
    assert [round(times[i], 6) for i in picks] == [float(k) for k in range(20)]
    assert picks[:3] == (0, 30, 60) and picks[-1] == 345


def test_invalid_settings_fail_clearly():
    with pytest.raises(ValueError, match="n ≥ 1 or fps"):
        Uniform(n=0)
    with pytest.raises(ValueError, match="fps must be > 0"):
        Uniform(fps=-1.0)
