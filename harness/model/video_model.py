"""The model half of a sample's path, from a model spec alone (no task): plan → decode → select → encode →
reduce → generate.

`decode` runs on a CPU worker (video and frame selection); `visual` and `generate` need the backbone, which is
loaded on first use so a decode-only worker never loads weights. A streaming selector (ViLAMP up to 10K frames)
decodes its frames itself, chunk by chunk, inside `visual`; `decode` then only probes and plans.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.backbones import BACKBONES
from harness.core.measure import StageTimer
from harness.core.records import (
    LETTERS,
    Frames,
    FrameSelection,
    Generation,
    GenerationConfig,
    Prompt,
    Sample,
    VideoMeta,
    VisualSequence,
)
from harness.methods.hooks import require_hook
from harness.methods.reduction import ReductionContext
from harness.model.preflight import build_methods
from harness.model.specs import ModelSpec
from harness.video.reader import probe, read_frames
from harness.video.streaming import VideoSource


@dataclass(frozen=True, eq=False)
class Decoded:
    """What the CPU half hands the model half: the frames that reach the model and how they were chosen."""

    meta: VideoMeta
    selection: FrameSelection
    frames: Frames
    n_decoded: int
    timings_s: dict[str, float]


def subset(frames: Frames, indices: tuple[int, ...]) -> Frames:
    if indices == frames.indices:
        return frames
    position = {f: i for i, f in enumerate(frames.indices)}
    rows = [position[i] for i in indices]
    return Frames(
        indices=indices,
        timestamps_s=tuple(frames.timestamps_s[r] for r in rows),
        pixels=frames.pixels[np.asarray(rows, dtype=int)],
        backend=frames.backend,
    )


class VideoModel:
    """A spec's selector, reducer and (lazily) backbone; one instance serves any number of samples."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.selector, self.reducer = build_methods(spec)
        self.streaming: bool = self.selector.streaming
        self._backbone: Any = None

    @property
    def backbone(self) -> Any:
        if self._backbone is None:
            self._backbone = BACKBONES.get(self.spec.backbone.name).load(**self.spec.backbone.args)
        return self._backbone

    def decode(self, sample: Sample, timer: StageTimer, backend: str = "auto") -> Decoded:
        """Probe, plan, decode and select with the video `backend` (raises VideoError for a missing or
        undecodable video)."""
        with timer("video_decode"):
            meta = probe(sample.video, backend)
            planned = self.selector.plan(meta)
            if not self.streaming:
                candidates = read_frames(sample.video, planned, backend=backend)
        if self.streaming:
            frames = Frames(planned, tuple(meta.time_of(i) for i in planned),  # pixels come later, in chunks
                            np.zeros((len(planned), 0, 0, 3), np.uint8), backend="planned")
            return Decoded(meta, FrameSelection(self.selector.name, planned), frames, 0, dict(timer.seconds))
        with timer("select"):
            selection = self.selector.select(sample, meta, candidates)
        return Decoded(meta, selection, subset(candidates, selection.indices), len(candidates), dict(timer.seconds))

    def visual(self, sample: Sample, decoded: Decoded, timer: StageTimer,
               backend: str = "auto") -> tuple[VisualSequence, Decoded]:
        """The visual sequence for the decoded frames, and the decoded record as the model saw it (a streaming
        selector chooses here, so its selection and frames replace the planned ones)."""
        if self.streaming:
            # Decoded here, in the model actor (the selection may need the backbone's encoder), a chunk at a time:
            # no array of all N frames or of their patch features ever exists.
            source = VideoSource(sample.video, backend)
            with timer("select"):
                selection, frames = self.selector.select_stream(sample, decoded.selection.indices, source,
                                                                self.backbone)
            decoded = dataclasses.replace(decoded, selection=selection, frames=frames, n_decoded=len(frames))
            with timer("vision"):  # encoding and merging interleave per chunk: one stage
                visual = self.reducer.reduce_stream(source, ReductionContext(sample, selection, frames, self.backbone))
            return visual, decoded
        downscale = decoded.selection.grid_downscale
        with timer("vision"):
            if downscale is None:
                encoded = self.backbone.encode_frames(decoded.frames)
            else:  # key clips: every frame at a coarser token grid (the selector's requires names the hook)
                require_hook(self.backbone, "coarse_encode", f"frame selection {decoded.selection.method!r}")
                encoded = self.backbone.encode_frames_coarse(decoded.frames, downscale)
        with timer("reduce"):
            context = ReductionContext(sample, decoded.selection, decoded.frames, self.backbone)
            return self.reducer.reduce(encoded, context), decoded

    def generate(self, visual: VisualSequence, prompt: Prompt, config: GenerationConfig) -> Generation:
        return self.backbone.generate(visual, prompt, config)

    def generation_config(self, base: GenerationConfig, sample: Sample) -> GenerationConfig:
        """`base` (the task's); a spec answering by option letter restricts the answer to this sample's letters."""
        if self.spec.answer == "option_letter" and sample.options:
            return dataclasses.replace(base, choices=tuple(LETTERS[: len(sample.options)]))
        return base
