"""Test videos written with PyAV (libx264, near-lossless): frame i shows its own index as two flat gray halves, at a
constant rate, at given presentation times (variable frame rate), or with a display rotation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

VFR_TIME_BASE = Fraction(1, 1000)  # presentation times of a variable-frame-rate file, in milliseconds


@dataclass(frozen=True)
class WrittenVideo:
    """An mp4 written by `write_video`: frame i shows its own index as two flat gray halves."""

    path: Path
    num_frames: int
    fps: float
    width: int
    height: int

    @staticmethod
    def levels(index: int) -> tuple[int, int]:
        """(left, right) gray levels of frame `index`: index % 32 and index // 32, unique up to 1024 frames."""
        return 16 + 7 * (index % 32), 16 + 7 * (index // 32 % 32)

    @staticmethod
    def measure(pixels: np.ndarray) -> tuple[float, float]:
        """Mean gray of the inner left and right quarters of a decoded frame (away from the edge between halves)."""
        h, w = pixels.shape[:2]
        inner = pixels[h // 4 : 3 * h // 4].astype(np.float64)
        return inner[:, w // 8 : 3 * w // 8].mean(), inner[:, 5 * w // 8 : 7 * w // 8].mean()


def write_video(path: Path, num_frames: int = 60, fps: float = 10.0, size: tuple[int, int] = (64, 48),
                gop: int = 12, bframes: bool = False, faststart: bool = False,
                times_s: Sequence[float] | None = None, rotation: int | None = None) -> WrittenVideo:
    """`times_s`: each frame's presentation time (a variable-frame-rate file; `fps` is then only the nominal
    rate); `rotation`: a display matrix rotating the stored frames this many degrees counter-clockwise."""
    width, height = size
    rate = Fraction(fps).limit_denominator(1001)
    if times_s is not None and len(times_s) != num_frames:
        raise ValueError(f"{len(times_s)} times for {num_frames} frames")
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        codec_options = {"preset": "medium" if bframes else "ultrafast", "crf": "8"}
        stream = container.add_stream("libx264", rate=rate, options=codec_options)
        stream.width, stream.height, stream.pix_fmt, stream.gop_size = width, height, "yuv420p", gop
        time_base = VFR_TIME_BASE if times_s is not None else 1 / rate
        if times_s is not None:
            stream.codec_context.time_base = stream.time_base = VFR_TIME_BASE
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(num_frames):
            left, right = WrittenVideo.levels(i)
            rgb = np.empty((height, width, 3), np.uint8)
            rgb[:, : width // 2], rgb[:, width // 2 :] = left, right
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i if times_s is None else round(times_s[i] / VFR_TIME_BASE)
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return WrittenVideo(path, num_frames, float(fps), width, height)
