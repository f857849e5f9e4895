"""DKS as a frame selector: every 1-fps frame reaches the model; the DKS picks are marked as keyframes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from baselines.uniform import fps_indices
from harness.core.config import ConfigError
from harness.core.records import Frames, FrameSelection, Sample, VideoMeta
from harness.methods.encoders import check_encoder, load_encoder
from harness.video.streaming import CHUNK, FrameSource, chunks, metadata_frames
from harness.vilamp.dks import K_DEFAULT, TAU_DEFAULT, dks, relevance

BACKBONE_ENCODER = "backbone"  # use the backbone's own selector encoder (ViLAMP's CLIP inside its checkpoint)


@dataclass(frozen=True)
class DKSSelector:
    k: int = K_DEFAULT
    tau: float = TAU_DEFAULT
    floor: float | None = None  # official f2t_thrd = 0.2; None = paper Algorithm 1
    fill: bool = False  # official distribute_frames: fill up to exactly K over the largest gaps
    encoder: str = "tiny-clip"  # an ENCODERS name, or "backbone"
    fps: float = 1.0  # ViLAMP's eval scripts decode at ~1 fps ...
    max_frames: int = 600  # ... capped at 600 frames (10,000 supported with streaming)
    keep_non_keyframes: bool = True  # False: only keyframes reach the model (DKS as a plain frame picker)
    chunk: int = CHUNK
    name: ClassVar[str] = "dks"
    streaming: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.k < 1 or self.max_frames < 1 or self.fps <= 0 or self.chunk < 1:
            raise ConfigError(f"dks: need k, max_frames, chunk >= 1 and fps > 0 (got {self})")
        if self.encoder != BACKBONE_ENCODER:
            check_encoder(self.encoder)
        if self.encoder == BACKBONE_ENCODER and not self.streaming:
            raise ConfigError("dks: encoder='backbone' needs the streaming selector dks-stream "
                              "(it runs beside the model)")

    @property
    def requires(self) -> frozenset[str]:
        return frozenset({"image_text_encoder"}) if self.encoder == BACKBONE_ENCODER else frozenset()

    def preflight(self) -> None:
        if self.encoder != BACKBONE_ENCODER:  # the backbone's own encoder comes with its checkpoint
            check_encoder(self.encoder, on_disk=True)

    def frame_budget(self, per_frame: int | None) -> None:
        return None  # every 1 fps frame reaches the model; how many stay whole depends on the video

    def plan(self, meta: VideoMeta) -> tuple[int, ...]:
        return fps_indices(meta, self.fps, self.max_frames)

    def encoder_for(self, backbone: Any = None) -> Any:
        if self.encoder == BACKBONE_ENCODER:
            return backbone.image_text_encoder
        return load_encoder(self.encoder)

    def choose(self, sample: Sample, indices: tuple[int, ...], frame_emb: Any, encoder: Any) -> FrameSelection:
        query = encoder.embed_text(sample.question)  # the question only, as the official eval scripts
        picks = dks(frame_emb, query, self.k, self.tau, self.floor, self.fill)
        keyframes = tuple(indices[i] for i in picks)
        rel = relevance(frame_emb, query)
        if self.keep_non_keyframes:
            return FrameSelection(self.name, indices, keyframes, tuple(round(float(r), 6) for r in rel))
        return FrameSelection(self.name, keyframes, keyframes, tuple(round(float(rel[i]), 6) for i in picks))

    def select(self, sample: Sample, meta: VideoMeta, frames: Frames) -> FrameSelection:
        encoder = self.encoder_for()
        return self.choose(sample, tuple(frames.indices), encoder.embed_images(frames), encoder)

    def select_stream(self, sample: Sample, planned: tuple[int, ...], source: FrameSource,
                      backbone: Any) -> tuple[FrameSelection, Frames]:
        """Decode and embed `planned` a chunk at a time; returns the selection and its pixel-less frames."""
        import torch

        encoder = self.encoder_for(backbone)
        embeddings, times = [], {}
        for part in chunks(planned, self.chunk):
            frames = source.read(part)
            embeddings.append(encoder.embed_images(frames))
            times.update(zip(frames.indices, frames.timestamps_s, strict=True))
        if not embeddings:
            raise ValueError("no frames planned")
        selection = self.choose(sample, planned, torch.cat(embeddings), encoder)
        return selection, metadata_frames(selection.indices, [times[i] for i in selection.indices])


@dataclass(frozen=True)
class StreamingDKS(DKSSelector):
    """DKS over frames decoded and embedded a chunk at a time inside the model actor (10K-frame inputs);
    pair it with a reducer that has `reduce_stream` (dfm)."""

    name: ClassVar[str] = "dks-stream"
    streaming: ClassVar[bool] = True  # decoded in the model actor: no CPU decode worker
