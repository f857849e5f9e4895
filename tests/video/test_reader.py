from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from harness.video.reader import VideoError, probe, read_frames

TOLERANCE = 3.0  # gray levels lost to compression on flat, near-lossless frames


def assert_frames_show(frames, video, indices):
    assert frames.indices == tuple(indices)
    assert frames.pixels.dtype == np.uint8 and frames.pixels.shape[0] == len(indices) and frames.pixels.shape[-1] == 3
    for index, pixels in zip(indices, frames.pixels):
        assert np.allclose(video.measure(pixels), video.levels(index), atol=TOLERANCE), f"frame {index}"


def test_probe_reports_the_written_stream(write_test_video):
    video = write_test_video(num_frames=60, fps=10.0, size=(64, 48))
    meta = probe(str(video.path))
    assert (meta.num_frames, meta.fps, meta.width, meta.height) == (60, 10.0, 64, 48)
    assert meta.path == str(video.path) and meta.duration_s == pytest.approx(6.0)


def test_auto_returns_exactly_the_requested_frames(write_test_video):
    video = write_test_video(num_frames=60, fps=10.0)
    indices = [0, 1, 5, 11, 12, 33, 59]
    frames = read_frames(str(video.path), indices)
    assert frames.backend == "pyav" and len(frames) == len(indices)  # auto reads with PyAV first
    assert frames.pixels.shape == (len(indices), 48, 64, 3)
    assert_frames_show(frames, video, indices)
    assert frames.timestamps_s == pytest.approx([i / 10.0 for i in indices], abs=1e-4)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_reduced_size_decode(write_test_video, backend):
    video = write_test_video(num_frames=20, size=(64, 48))
    frames = read_frames(str(video.path), [0, 7, 19], size=(32, 24), backend=backend)
    assert frames.pixels.shape == (3, 24, 32, 3) and frames.backend == backend
    assert_frames_show(frames, video, [0, 7, 19])


@pytest.mark.parametrize("bframes", [False, True], ids=["ip", "bframes"])
@pytest.mark.parametrize(
    "indices",
    [[0, 1, 2, 3, 40], [0, 3, 70, 71, 150, 199], [199], [130, 131, 132]],
    ids=["dense", "sparse-seek", "last", "seek-first"],
)
def test_pyav_matches_decord(write_test_video, bframes, indices):
    video = write_test_video(num_frames=200, fps=25.0, gop=25, bframes=bframes)
    by_decord = read_frames(str(video.path), indices, backend="decord")
    by_pyav = read_frames(str(video.path), indices, backend="pyav")
    assert by_pyav.backend == "pyav"
    assert_frames_show(by_pyav, video, indices)
    assert np.abs(by_pyav.pixels.astype(int) - by_decord.pixels).max() <= 2
    assert by_pyav.timestamps_s == pytest.approx(by_decord.timestamps_s, abs=1e-4)
    assert by_pyav.timestamps_s == pytest.approx([i / 25.0 for i in indices], abs=1e-4)


def test_unsorted_and_empty_requests(write_test_video):
    video = write_test_video(num_frames=20)
    frames = read_frames(str(video.path), [9, 2, 9])
    assert_frames_show(frames, video, [9, 2, 9])
    assert frames.timestamps_s == pytest.approx([0.9, 0.2, 0.9], abs=1e-4)
    for backend in ("decord", "pyav"):
        empty = read_frames(str(video.path), [], backend=backend)
        assert empty.pixels.shape == (0, 48, 64, 3) and empty.indices == ()


def test_auto_falls_back_to_pyav_when_decord_cannot_open(write_test_video):
    # Index up front (faststart) but the tail of the data cut off: decord refuses the file while PyAV can
    # still decode the frames that are there.
    video = write_test_video(num_frames=120, fps=10.0, gop=10, faststart=True)
    data = video.path.read_bytes()
    video.path.write_bytes(data[: len(data) // 2])
    path = str(video.path)
    with pytest.raises(VideoError) as decord_failure:
        read_frames(path, [0], backend="decord")
    assert decord_failure.value.status == "decode_error"
    assert probe(path).num_frames == 120  # from the intact index
    frames = read_frames(path, [0, 5, 20])
    assert frames.backend == "pyav"
    assert_frames_show(frames, video, [0, 5, 20])
    with pytest.raises(VideoError) as past_the_cut:
        read_frames(path, [0, 119])
    assert past_the_cut.value.status == "decode_error"


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_missing_file(tmp_path, backend):
    path = str(tmp_path / "nope.mp4")
    with pytest.raises(VideoError) as error:
        read_frames(path, [0], backend=backend)
    assert error.value.status == "missing" and path in str(error.value)
    with pytest.raises(VideoError) as error:
        probe(path)
    assert error.value.status == "missing"


@pytest.mark.parametrize("corruption", ["random-bytes", "truncated", "empty", "directory"])
@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_corrupt_file_is_a_decode_error(write_test_video, tmp_path, corruption, backend):
    path = tmp_path / "bad.mp4"
    if corruption == "random-bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    elif corruption == "truncated":  # moov atom at the end: the first half alone has no index
        data = write_test_video(num_frames=60).path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif corruption == "empty":
        path.write_bytes(b"")
    else:
        path.mkdir()
    with pytest.raises(VideoError) as error:
        read_frames(str(path), [0, 1], backend=backend)
    assert error.value.status == "decode_error" and str(path) in str(error.value)
    with pytest.raises(VideoError) as error:
        probe(str(path))
    assert error.value.status == "decode_error"


def test_auto_reads_with_decord_where_pyav_decodes_fewer_frames_than_probed(write_test_video, monkeypatch):
    # A clip trimmed with `ffmpeg -ss … -c copy` carries an edit list: PyAV drops the discarded packets and decodes
    # fewer frames than decord (which `probe` asks) counts, so its "past the last frame" must not end an auto read.
    import harness.video.reader as reader

    video = write_test_video(num_frames=20)

    def fewer(path, wanted, size, display):
        raise reader._OutOfRange(f"frame {wanted[-1]} is past the last decodable frame")

    monkeypatch.setattr(reader, "_read_pyav", fewer)
    frames = read_frames(str(video.path), [0, 19])
    assert frames.backend == "decord" and len(frames) == 2
    with pytest.raises(VideoError, match="past the last decodable frame"):
        read_frames(str(video.path), [0, 19], backend="pyav")  # forced: the out-of-range is final


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
@pytest.mark.parametrize("indices", [[0, 20], [20], [5, 1000], [-1, 3]])
def test_out_of_range_index_is_a_decode_error(write_test_video, backend, indices):
    video = write_test_video(num_frames=20)
    with pytest.raises(VideoError) as error:
        read_frames(str(video.path), indices, backend=backend)
    assert error.value.status == "decode_error"


def test_video_error_is_one_line_and_pickles(tmp_path):
    error = VideoError("decode_error", "/x/y.mp4", "first line\n  at frame 3\n\tbacktrace")
    assert "\n" not in str(error) and "/x/y.mp4" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.path, str(copy)) == ("decode_error", "/x/y.mp4", str(error))


def test_unknown_backend_is_a_usage_error(write_test_video):
    video = write_test_video(num_frames=4)
    with pytest.raises(ValueError, match="unknown video backend"):
        read_frames(str(video.path), [0], backend="opencv")


def test_no_file_descriptors_leak(write_test_video):
    video = write_test_video(num_frames=30)
    before = len(os.listdir("/proc/self/fd"))
    for backend in ("decord", "pyav"):
        for _ in range(5):
            read_frames(str(video.path), [0, 29], backend=backend)
    assert len(os.listdir("/proc/self/fd")) <= before + 1
