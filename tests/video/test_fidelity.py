"""What the decoders show is what the video shows: sampling by presentation time on variable-frame-rate files,
rotated files in display orientation from both backends, and failure messages that are the same on every run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from baselines.uniform import Uniform
from harness.video.reader import VideoError, probe, read_frames

# 8 s: 3 s at 30 fps, then 3 s at 4 fps, then 2 s at 12 fps (mean 15.75 fps): frame number × mean rate is off by
# up to ~1.5 s here, presentation time is not
VFR_TIMES = [i / 30 for i in range(90)] + [3 + i / 4 for i in range(12)] + [6 + i / 12 for i in range(24)]


@pytest.fixture
def vfr_video(write_test_video):
    return write_test_video("vfr.mp4", num_frames=len(VFR_TIMES), fps=30.0, times_s=VFR_TIMES)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_a_variable_rate_file_probes_its_presentation_times(vfr_video, backend):
    meta = probe(str(vfr_video.path), backend)
    assert meta.num_frames == len(VFR_TIMES)
    assert np.allclose(meta.frame_times_s, VFR_TIMES, atol=1e-3)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_one_fps_on_a_variable_rate_file_is_one_second_apart(vfr_video, backend):
    meta = probe(str(vfr_video.path), backend)
    picks = Uniform(fps=1.0, max_frames=None).plan(meta)
    frames = read_frames(str(vfr_video.path), picks, backend=backend)
    times = np.asarray(frames.timestamps_s)
    gaps = np.diff(VFR_TIMES)
    # each pick within half the local frame gap of k seconds, so consecutive picks 1 s ± half a gap apart
    for k, t in enumerate(times):
        local = gaps[max(0, np.searchsorted(VFR_TIMES, k) - 1)]
        assert abs(t - k) <= local / 2 + 1e-3, (k, t)
    assert len(times) == 8 and np.all(np.abs(np.diff(times) - 1.0) <= gaps.max() / 2 + 1e-3)
    for index, pixels in zip(picks, frames.pixels):  # the frames are the ones those times name
        assert np.allclose(vfr_video.measure(pixels), vfr_video.levels(index), atol=3.0)


def test_a_constant_rate_file_plans_as_before(write_test_video):
    video = write_test_video("cfr.mp4", num_frames=60, fps=10.0)
    meta = probe(str(video.path))
    assert meta.frame_times_s == () and meta.time_of(30) == 3.0
    assert Uniform(fps=1.0, max_frames=None).plan(meta) == tuple(range(0, 60, 10))


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_rotated_file_reads_the_same_display_frames_from_both_backends(write_test_video, rotation):
    video = write_test_video("rot.mp4", num_frames=20, fps=10.0, size=(64, 48), rotation=rotation)
    metas = {b: probe(str(video.path), b) for b in ("decord", "pyav")}
    display = (48, 64) if rotation % 180 else (64, 48)
    assert {(m.width, m.height, m.rotation) for m in metas.values()} == {(*display, rotation)}
    indices = [0, 7, 19]
    frames = {b: read_frames(str(video.path), indices, backend=b) for b in ("decord", "pyav", "auto")}
    for backend, got in frames.items():
        assert got.pixels.shape == (3, display[1], display[0], 3), backend
    # the same pictures (decord turns before converting to RGB, PyAV after: chroma rounding differs by a few
    # levels, more on the edge between the halves), each the stored frame turned
    assert np.abs(frames["decord"].pixels.astype(int) - frames["pyav"].pixels).mean() <= 2.0
    for backend in ("decord", "pyav"):
        for index, pixels in zip(indices, frames[backend].pixels):
            upright = np.rot90(pixels, -rotation // 90)  # back to the stored orientation
            assert np.allclose(video.measure(upright), video.levels(index), atol=3.0), (backend, index)
    small = {b: read_frames(str(video.path), [7], size=(display[0] // 2, display[1] // 2), backend=b).pixels
             for b in ("decord", "pyav")}
    assert {s.shape for s in small.values()} == {(1, display[1] // 2, display[0] // 2, 3)}


def test_decoder_log_noise_stays_out_of_the_message():
    raw = ("[17:14:31] /github/workspace/src/runtime/ndarray.cc:171: Check failed: from_size == to_size\n\n"
           "Stack trace:\n  [bt] (0) /usr/lib/libdecord.so(+0x1234) [0x7f00deadbeef]")
    error = VideoError("decode_error", "/data/v.mp4", f"decord: {raw}")
    assert str(error) == "decode_error: /data/v.mp4: decord: Check failed: from_size == to_size"


@pytest.mark.parametrize("corruption", ["random-bytes", "truncated"])
def test_a_decode_error_reads_the_same_twice(write_test_video, tmp_path, corruption):
    path = tmp_path / "bad.mp4"
    data = write_test_video(num_frames=60).path.read_bytes()
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
                     if corruption == "random-bytes" else data[: len(data) // 2])
    messages = set()
    for _ in range(2):
        with pytest.raises(VideoError) as error:
            probe(str(path))
        messages.add(str(error.value))
    (message,) = messages
    assert "[" not in message.split(str(path))[1] and ".cc:" not in message  # no clock, no build path


def test_a_missing_file_has_one_wording(tmp_path):
    from harness.core.measure import StageTimer
    from harness.model.specs import MODELS
    from harness.model.video_model import VideoModel

    path = str(tmp_path / "nope.mp4")
    with pytest.raises(VideoError) as by_reader:
        probe(path)
    from harness.core.records import Sample

    sample = Sample(id="s", task="needle", video=path, question="q", options=("a", "b"), answer=0)
    with pytest.raises(VideoError) as by_model:
        VideoModel(MODELS.get("tiny-uniform")).decode(sample, StageTimer())
    assert str(by_reader.value) == str(by_model.value) == f"missing: {path}: no such file"


def test_a_stream_that_fails_mid_video_records_no_frames_as_used(write_test_video, tmp_path):
    """vilamp-tiny-10k streams its frames inside the model stage: the index (faststart) says 120 frames, the data
    stops half way, so decoding fails after planning. The result names no planned frame as if the model saw it."""
    from harness.core.records import Sample
    from harness.data.tasks import get_task
    from harness.model.specs import MODELS
    from harness.run.pipeline import Pipeline

    data = write_test_video(num_frames=120, fps=4.0, faststart=True).path.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    assert probe(str(path)).num_frames == 120  # the plan still sees the whole video
    sample = Sample(id="s", task="needle", video=str(path), question="q", options=("a", "b", "c", "d"), answer=0)
    result = Pipeline(MODELS.get("vilamp-tiny-10k"), get_task("needle")).run(sample)
    assert result.status == "decode_error", result.error
    assert (result.n_frames_decoded, result.frame_indices, result.n_frames, result.keyframes) == (0, (), 0, ())


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_a_run_decodes_with_the_backend_it_names(write_test_video, backend):
    from harness.data.tasks import get_task
    from harness.evaluate import EvalRequest, resolve
    from harness.run.pipeline import Pipeline

    resolved = resolve(EvalRequest(task="needle", model="tiny-uniform", limit=1, video_backend=backend))
    assert resolved.task.video_backend == backend and resolved.config["task_spec"]["video_backend"] == backend
    video = write_test_video(num_frames=40, fps=10.0)
    sample = dataclasses.replace(resolved.samples[0], video=str(video.path))
    decoded = Pipeline(resolved.spec, resolved.task).decode(sample)
    assert decoded.frames.backend == backend
    assert get_task("needle").video_backend == "auto"  # the task's own default is untouched
