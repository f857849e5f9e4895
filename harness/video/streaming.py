"""Chunked frame access for 10K-frame inputs: frames are decoded, encoded and dropped a chunk at a time.

Nothing of shape [N, H, W, 3] or [N, patches, hidden] is held for all N frames: a streaming method keeps
per-frame vectors ([N, D] selector embeddings, [N − K, C] merged tokens) and K keyframe grids only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Protocol

import decord
import numpy as np

from harness.core.records import Frames
from harness.video.reader import open_reader, read_frames

CHUNK = 64  # frames decoded and encoded at once


class FrameSource(Protocol):
    def read(self, indices: Sequence[int]) -> Frames:
        """Decoded frames for sorted frame numbers `indices`."""
        ...


class VideoSource:
    """Frames of a video file, decoded on demand (decord, PyAV fallback) through one reader kept open, so
    consecutive chunks continue decoding where the last one stopped."""

    def __init__(self, path: str, backend: str = "auto") -> None:
        self.path = path
        self.backend = backend
        self._reader: decord.VideoReader | None = None

    def read(self, indices: Sequence[int]) -> Frames:
        if self._reader is None and self.backend != "pyav" and os.path.isfile(self.path):
            self._reader = open_reader(self.path)
        return read_frames(self.path, list(indices), reader=self._reader, backend=self.backend)


def chunks(indices: Sequence[int], size: int = CHUNK) -> Iterator[tuple[int, ...]]:
    for start in range(0, len(indices), size):
        yield tuple(indices[start : start + size])


def metadata_frames(indices: Sequence[int], timestamps_s: Sequence[float]) -> Frames:
    """Frames carrying frame numbers and timestamps but no pixels ([T, 0, 0, 3]): what a streaming method
    reports as 'the frames the model sees' without holding them."""
    return Frames(indices=tuple(indices), timestamps_s=tuple(timestamps_s),
                  pixels=np.zeros((len(indices), 0, 0, 3), np.uint8), backend="stream")
