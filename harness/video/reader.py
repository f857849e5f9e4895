"""Video decoding: probe a file's metadata and read exact frames by frame number.

`backend="auto"` probes with decord (PyAV when decord cannot open the file) and reads frames with PyAV (decord
when PyAV fails; decord first when a chunked read holds an open decord reader); either can be forced. Both return frames as displayed: a stream with a display rotation (phone clips) is turned by PyAV here and
by decord itself, and both probe the display width and height. Every failure surfaces as `VideoError` with status
"missing" or "decode_error" and a message free of the decoder's clock times and build paths, so a broken video
becomes a reproducible per-sample result instead of a crashed worker. Both backends run single-threaded:
decoding happens inside parallel workers.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import av
import decord
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from harness.core.records import Frames, VideoMeta
from harness.core.status import SampleError

BACKENDS = ("auto", "decord", "pyav")
# A stream counts as constant-rate when every frame is within this fraction of a frame gap of i / fps.
_CFR_TOLERANCE = 0.25
# decord's messages carry its log prefix ("[17:14:31] /github/workspace/src/video/video_reader.cc:171: ") and a
# native backtrace with load addresses: neither belongs in a journal that must be the same on every run.
_LOG_NOISE = re.compile(r"\[\d{2}:\d{2}:\d{2}\]\s*|(?:/[\w.+-]+)+\.(?:cc|cpp|cu|h|c):\d+:\s*")

VideoStatus = Literal["missing", "decode_error"]


class VideoError(SampleError):
    """A video that cannot be used; `status` is the sample status it maps to."""

    def __init__(self, status: VideoStatus, path: str, detail: str = "") -> None:
        self.status: VideoStatus = status
        self.path = path
        self.detail = _LOG_NOISE.sub("", " ".join(detail.split("Stack trace")[0].split()))[:300]
        super().__init__(f"{status}: {path}" + (f": {self.detail}" if self.detail else ""))

    def __reduce__(self):  # keyword-free args so the error crosses process boundaries intact
        return (type(self), (self.status, self.path, self.detail))


class _NotSeekable(Exception):
    """Frame numbers cannot be recovered after a seek; decode sequentially instead."""


class _OutOfRange(Exception):
    pass


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; valid: {', '.join(BACKENDS)}")


@dataclass(frozen=True)
class _Display:
    """How a stream is displayed: its stored (coded) size and the rotation its display matrix asks for."""

    rotation: int  # 0, 90, 180 or 270 degrees counter-clockwise
    stored: tuple[int, int]  # (width, height) as coded

    @property
    def quarter(self) -> bool:
        return self.rotation % 180 == 90  # width and height swap

    def size(self, requested: tuple[int, int] | None = None) -> tuple[int, int]:
        """(width, height) of the displayed frames, at `requested` (display orientation) when given."""
        if requested is not None:
            return requested
        w, h = self.stored
        return (h, w) if self.quarter else (w, h)

    def stored_size(self, requested: tuple[int, int] | None) -> tuple[int, int]:
        """The stored-orientation size a decoder must scale to for displayed frames of `requested`."""
        w, h = self.size(requested)
        return (h, w) if self.quarter else (w, h)


def _display(path: str) -> _Display | None:
    """The stream's display (PyAV reads the display matrix with the first frame); None when PyAV cannot decode it."""
    st = os.stat(path)
    return _display_of(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=256)
def _display_of(path: str, _mtime_ns: int, _size: int) -> _Display | None:  # keyed on the file's version
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            frame = next(container.decode(stream))
            rotation = round((frame.rotation or 0) / 90) * 90 % 360
            return _Display(int(rotation), (frame.width, frame.height))
    except Exception:  # PyAV errors have many types; decord may still read the file, unrotated
        return None


def constant_rate_times(times: Sequence[float], fps: float) -> tuple[float, ...]:
    """Presentation times relative to the first frame, or () when frame i sits at i / fps (constant rate)."""
    t = np.asarray(times, dtype=np.float64)
    if len(t) == 0 or not _valid_fps(fps):
        return ()
    t = t - t[0]
    if np.all(np.abs(t - np.arange(len(t)) / fps) <= _CFR_TOLERANCE / fps):
        return ()
    return tuple(float(x) for x in np.round(t, 6))


def probe(path: str, backend: str = "auto") -> VideoMeta:
    """Frame count, average fps, display size and rotation, and (variable rate) every frame's time, of the first
    video stream; "auto" asks decord, then PyAV when decord cannot open the file."""
    check_backend(backend)
    _require_file(path)
    failures = ""
    if backend in ("auto", "decord"):
        try:
            return _probe_decord(path)
        except Exception as e:  # decord raises DECORDError, RuntimeError, IndexError... on bad files
            if backend == "decord":
                raise VideoError("decode_error", path, f"decord: {e}") from e
            failures = f"decord: {e}; "
    try:
        return _probe_pyav(path)
    except Exception as e:
        raise VideoError("decode_error", path, f"{failures}pyav: {e}") from e


def read_frames(
    path: str,
    indices: Sequence[int],
    *,
    size: tuple[int, int] | None = None,
    backend: str = "auto",
    reader: decord.VideoReader | None = None,
) -> Frames:
    """Decode exactly the frames `indices` (frame numbers) as uint8 RGB [T, H, W, 3].

    `size=(width, height)` makes the decoder scale down, which cuts memory for long videos. "auto" reads with
    PyAV and falls back to decord when PyAV fails on the file (not when an index is out of range); with an open
    decord `reader` (`open_reader`, reused across calls reading a video in chunks) decord comes first.
    PyAV first: its one-thread decode with a shared scaler takes ~0.5× decord's time for the same frames
    (`make bench` P1: decord hands every frame between threads and rescales at ~8× PyAV's cost per frame).
    """
    check_backend(backend)
    _require_file(path)
    wanted = sorted(set(int(i) for i in indices))
    if wanted and wanted[0] < 0:
        raise VideoError("decode_error", path, f"negative frame index {wanted[0]}")
    display = _display(path)
    order = (backend,) if backend != "auto" else ("decord", "pyav") if reader is not None else ("pyav", "decord")

    def attempt(name: str) -> Frames:
        if name == "pyav":
            pixels, times = _read_pyav(path, wanted, size, display)
        else:  # an open reader decodes at its own size: a scaled read opens one at the asked size
            decoder = reader if reader is not None and size is None else _decord_reader(path, size, display)
            pixels, times = _read_decord(decoder, wanted, size, display)
        return _frames(indices, wanted, pixels, times, name)

    # An index past the end is final only from the last decoder: PyAV may decode fewer frames than decord counts
    # (an edit list that discards packets of a trimmed clip), and `probe` counts with decord.
    failures = ""
    for name in order[:-1]:
        try:
            return attempt(name)
        except Exception as e:  # DECORDError, PyAV's many error types, _OutOfRange... whatever the file provokes
            failures += f"{name}: {e}; "
    try:
        return attempt(order[-1])
    except _OutOfRange as e:
        raise VideoError("decode_error", path, str(e)) from None
    except Exception as e:
        raise VideoError("decode_error", path, f"{failures}{order[-1]}: {e}") from e


def _require_file(path: str) -> None:
    if not os.path.exists(path):
        raise VideoError("missing", path, "no such file")
    if not os.path.isfile(path):
        raise VideoError("decode_error", path, "not a regular file")


def _frames(indices: Sequence[int], wanted: list[int], pixels: np.ndarray, times: list[float], backend: str) -> Frames:
    # Callers pass sorted unique indices; anything else is still answered in the order asked.
    order = [int(i) for i in indices]
    if order != wanted:
        rows = np.searchsorted(wanted, order)
        pixels, times = pixels[rows], [times[r] for r in rows]
    return Frames(indices=tuple(order), timestamps_s=tuple(times), pixels=pixels, backend=backend)


def _valid_fps(fps: float) -> bool:
    return math.isfinite(fps) and fps > 0


# ---------------------------------------------------------------- decord


def open_reader(path: str) -> decord.VideoReader | None:
    """A decord reader to pass to repeated `read_frames` calls (no re-open, no re-seek between chunks); None
    when decord cannot open the file, so `read_frames` takes its usual fallback."""
    try:
        return _decord_reader(path, None, _display(path))
    except Exception:  # DECORDError, RuntimeError...: read_frames reports the file's real status
        return None


def _decord_reader(path: str, size: tuple[int, int] | None, display: _Display | None) -> decord.VideoReader:
    if display is not None and display.rotation:
        # decord turns a rotated stream itself, but sizes its output for the stored frame unless told one
        # (dmlc/decord#51): ask for the stored size explicitly, and `_read_decord` reshapes to the display size
        size = display.stored_size(size)
    if size is None:
        return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    width, height = size
    return decord.VideoReader(path, ctx=decord.cpu(0), width=width, height=height, num_threads=1)


def _probe_decord(path: str) -> VideoMeta:
    display = _display(path)
    reader = _decord_reader(path, None, display)
    num_frames, fps = len(reader), float(reader.get_avg_fps())
    if num_frames <= 0 or not _valid_fps(fps):
        raise ValueError(f"implausible stream: {num_frames} frames at {fps} fps")
    if display is not None:
        width, height = display.size()
    else:
        height, width, _ = reader[0].shape  # decord exposes no size attribute; frame 0 is a cheap keyframe
    times = constant_rate_times(reader.get_frame_timestamp(np.arange(num_frames))[:, 0], fps)
    return VideoMeta(path=path, num_frames=num_frames, fps=fps, width=int(width), height=int(height),
                     rotation=display.rotation if display else 0, frame_times_s=times)


def _read_decord(reader: decord.VideoReader, wanted: list[int], size: tuple[int, int] | None,
                 display: _Display | None) -> tuple[np.ndarray, list[float]]:
    if wanted and wanted[-1] >= len(reader):
        raise _OutOfRange(f"frame {wanted[-1]} >= frame count {len(reader)}")
    if not wanted:
        height, width, _ = reader[0].shape
        return np.zeros((0, height, width, 3), np.uint8), []
    # get_batch rather than sequential reader[i]: measured here (CPU time, median of 5, decord num_threads=1) on
    # needle videos they tie within noise, get_batch 0-15% ahead: 1 fps GOP 32 128 px, 512 frames all 0.11 vs
    # 0.13 s, 10K frames every 4th 3.4 vs 3.8 s, 600 uniform 3.05 vs 2.98 s; 30 fps GOP 250 320x240, 600 frames
    # (every 10th of 6000) 1.34 vs 1.52 s. It also fills one output array instead of stacking a copy.
    pixels = reader.get_batch(wanted).asnumpy()
    if display is not None and display.quarter:
        width, height = display.size(size)
        pixels = pixels.reshape(len(wanted), height, width, 3)  # turned frames in an array of the stored shape
    times = [float(t) for t in reader.get_frame_timestamp(wanted)[:, 0]]  # container pts, from stream start
    return pixels, times


# ---------------------------------------------------------------- PyAV


def _probe_pyav(path: str) -> VideoMeta:
    display = _display(path)
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        pts, _ = _packet_index(container, stream)
        num_frames = stream.frames or len(pts)
        start, time_base = stream.start_time or 0, stream.time_base
    if display is None:
        raise ValueError("no decodable frame")
    width, height = display.size()
    if num_frames <= 0 or not _valid_fps(fps) or width <= 0 or height <= 0:
        raise ValueError(f"implausible stream: {num_frames} frames at {fps} fps, {width}x{height}")
    times = constant_rate_times([float((p - start) * time_base) for p in pts], fps) if len(pts) == num_frames \
        and time_base is not None else ()
    return VideoMeta(path=path, num_frames=int(num_frames), fps=fps, width=width, height=height,
                     rotation=display.rotation, frame_times_s=times)


def keyframe_positions(path: str) -> tuple[int, ...]:
    """Frame numbers of the first video stream's keyframes (where decoding can restart), from its packets."""
    _require_file(path)
    try:
        with av.open(path) as container:
            return tuple(_packet_index(container, container.streams.video[0])[1])
    except Exception as e:  # PyAV errors have many types
        raise VideoError("decode_error", path, f"pyav: {e}") from e


def _packet_index(container: InputContainer, stream: VideoStream) -> tuple[list[int], list[int]]:
    """Every packet's pts in presentation order, and the keyframes' positions in it (reads packets, decodes
    nothing)."""
    packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None]
    pts = sorted(p for p, _ in packets)
    rank = {p: i for i, p in enumerate(pts)}
    return pts, sorted(rank[p] for p, key in packets if key)


def _read_pyav(path: str, wanted: list[int], size: tuple[int, int] | None,
               display: _Display | None) -> tuple[np.ndarray, list[float]]:
    if wanted != list(range(len(wanted))):  # a prefix of the video has nothing to skip: no index pass for it
        try:
            return _collect_pyav(path, wanted, size, display, seek=True)
        except _NotSeekable:
            pass
    return _collect_pyav(path, wanted, size, display, seek=False)


def _collect_pyav(
    path: str, wanted: list[int], size: tuple[int, int] | None, display: _Display | None, *, seek: bool
) -> tuple[np.ndarray, list[float]]:
    turns = display.rotation // 90 if display is not None else 0  # PyAV hands out frames as stored
    scale = display.stored_size(size) if display is not None and size is not None else size
    width, height = scale if scale is not None else (None, None)
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        start = stream.start_time or 0
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        found = _seeking(container, stream, wanted) if seek else _sequential(container, stream, wanted)
        # One scaler for all frames, on this thread: `to_ndarray` builds a scaler per frame with a thread per CPU
        # (PyAV 18's default): 41 ms instead of 4 for the 120 frames of the P1 bench (harness/bench/speed.py).
        reformatter = VideoReformatter()
        pixels, times = [], []
        for index, frame in found:
            rgb = reformatter.reformat(frame, width, height, "rgb24", threads=1).to_ndarray()
            pixels.append(np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb)
            if frame.pts is not None and stream.time_base is not None:
                times.append(float((frame.pts - start) * stream.time_base))  # like decord: from stream start
            else:
                times.append(index / fps if _valid_fps(fps) else 0.0)
        if not pixels:
            w, h = display.size(size) if display is not None else (width or stream.codec_context.width,
                                                                     height or stream.codec_context.height)
            return np.zeros((0, h, w, 3), np.uint8), []
    return np.stack(pixels), times


def _sequential(container: InputContainer, stream: VideoStream, wanted: list[int]) -> Iterator[tuple[int, VideoFrame]]:
    """Decode from the start, counting frames: exact for any file, slow for far-apart indices."""
    targets = iter(wanted)
    target = next(targets, None)
    if target is None:
        return
    for index, frame in enumerate(container.decode(stream)):
        if index == target:
            yield index, frame
            target = next(targets, None)
            if target is None:
                return
    raise _OutOfRange(f"frame {target} is past the last decodable frame")


def _seeking(container: InputContainer, stream: VideoStream, wanted: list[int]) -> Iterator[tuple[int, VideoFrame]]:
    """Seek to a target's keyframe whenever that skips frames (decoding restarts there, so no wanted frame needs
    the skipped ones: the same pixels, fewer frames decoded); frame numbers come from ranking packet pts. The
    packet pass costs ~1/20 of decoding each frame (P1 bench video: 10 ms vs 190 ms for 3600 frames)."""
    try:
        pts, keys = _packet_index(container, stream)
    except av.FFmpegError as e:
        raise _NotSeekable(str(e)) from e
    rank = {p: i for i, p in enumerate(pts)}
    if len(rank) != len(pts):
        raise _NotSeekable("duplicate pts")
    frames: Iterator[VideoFrame] | None = None
    position = -1
    for target in wanted:
        if target >= len(pts):
            raise _OutOfRange(f"frame {target} >= frame count {len(pts)}")
        key = keys[bisect.bisect_right(keys, target) - 1] if keys and keys[0] <= target else 0
        if frames is None or key > position + 1:
            container.seek(pts[target], stream=stream, backward=True)
            frames = container.decode(stream)
        for frame in frames:
            position = rank.get(frame.pts, -1) if frame.pts is not None else -1
            if position < 0:
                raise _NotSeekable(f"decoded pts {frame.pts} is not a packet pts")
            if position == target:
                yield target, frame
                break
            if position > target:
                raise _NotSeekable(f"seek for frame {target} landed on frame {position}")
        else:
            raise _OutOfRange(f"frame {target} is past the last decodable frame")
