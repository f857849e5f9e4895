"""Small versions of `make bench`: P1 on a 4-second video, and the ViLAMP scale benchmark at 40 and 80 frames."""

import json
import shutil

from harness.bench.speed import bench_p1, best_times, flow_shop_makespan, frames_to_decode
from harness.bench.vilamp_scale import main as bench_vilamp


def test_best_times_takes_each_contenders_fastest_run_in_turns():
    calls = []
    best, outputs = best_times({"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2}, 3)
    assert calls == ["a", "b"] * 3 and outputs == {"a": 1, "b": 2} and set(best) == {"a", "b"}


def test_frames_to_decode_restarts_at_each_wanted_frames_keyframe():
    # GOP 0-249: frames 0..240 (241); GOP 250-499: 250..270 (21); the tails after 240 and 270 are skipped
    assert frames_to_decode((0, 250, 500), (0, 30, 240, 270)) == 262
    assert frames_to_decode((0, 10), (5,)) == 6 and frames_to_decode((0, 10), (12, 13)) == 4
    assert frames_to_decode((0,), ()) == 0


def test_p1_reads_the_same_frames_as_opencv_and_ffmpeg():
    p1 = bench_p1(seconds=4, repeats=1)
    assert p1["video_frames"] == 120 and p1["frames_sampled"] == 4 and p1["opencv_frames"] == 4
    assert p1["harness_s"] > 0 and p1["ratio_vs_opencv"] > 0
    # one keyframe (GOP 250 > 120 frames): frames 0..90 must be decoded for 0, 30, 60, 90; PyAV decodes all 120
    assert p1["frames_to_decode"] == 91 and p1["pyav_decode_all_frames"] == 120
    assert p1["decord_vs_harness_max_abs_diff"] == 0
    if shutil.which("ffmpeg"):  # `make bench` installs it; a machine without it gets the reason instead
        assert p1["ffmpeg_frames"] == 4 and p1["ffmpeg_mean_abs_diff"] == 0.0
        assert p1["ffmpeg_decode_all_s"] > 0 and p1["decode_all_vs_ffmpeg_1thread"] > 0
    else:
        assert p1["ffmpeg"].startswith("unavailable")


def test_vilamp_scale_small(tmp_path):
    out = tmp_path / "vilamp_scale.json"
    assert bench_vilamp(["--sizes", "40", "80", "--models", "vilamp-tf", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    (small, large) = report["runs"]
    assert (small["n_frames"], large["n_frames"]) == (40, 80)
    assert large["visual_tokens"] - small["visual_tokens"] == 40  # one merged token per extra non-keyframe
    assert report["ratio_80_vs_40"]["vilamp-tf"]["peak_rss_ratio"] > 0


def test_flow_shop_makespan_exposes_the_first_decode_and_the_last_model_step():
    assert flow_shop_makespan([(2.0, 1.0), (1.0, 1.0), (1.0, 1.0)]) == 5.0  # model waits 2 s, then never idles
    assert flow_shop_makespan([(1.0, 3.0), (1.0, 3.0)]) == 7.0  # decode-bound start, model-bound after
    assert flow_shop_makespan([]) == 0.0
