"""One sample through the path: plan → decode → select → encode → reduce → generate → extract → score.

Split in two halves so a runner can put them on different workers: `decode` (CPU: video and frame
selection) and `infer` (the model). Every failure becomes a `SampleResult` status; nothing raises.
"""

from __future__ import annotations

import dataclasses
import os
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.backbones import BACKBONES
from harness.core.config import ConfigError
from harness.scoring.extract import EXTRACTORS, Extractor
from harness.core.measure import PeakMemory, StageTimer
from harness.scoring.prompts import render
from harness.core.records import (Frames, FrameSelection, Generation, GenerationConfig, Prompt, Sample, SampleResult,
                             VideoMeta)
from harness.data.samples import LETTERS
from harness.methods.reduction import REDUCERS, ReductionContext, TokenReducer
from harness.methods.selection import SELECTORS, FrameSelector
from harness.model.specs import ModelSpec
from harness.data.subtitles import for_prompt
from harness.data.tasks import TaskSpec
from harness.video.reader import VideoError, probe, read_frames
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


def needle_retained(sample: Sample, frames: Frames) -> bool | None:
    """Whether every evidence span still has a frame among those the model sees (None: unknown)."""
    if not sample.evidence_spans_s:
        return None
    eps = 1e-6  # timestamps are k / fps; keep exact span edges inside
    return all(
        any(start - eps <= t < end - eps for t in frames.timestamps_s) for start, end in sample.evidence_spans_s
    )


def decodes_in_model(spec: ModelSpec) -> bool:
    """Whether the model actor must decode the video itself instead of a CPU decode worker.

    A selector whose frames are too many to travel as one array (ViLAMP streaming 10K frames) sets a
    class attribute `decode_in_model = True`; every other selector is decoded in CPU workers.
    """
    return bool(getattr(SELECTORS.get(spec.selector.name), "decode_in_model", False))


def outcome_fields(sample: Sample, decoded: Decoded) -> dict[str, Any]:
    """What a result records about the frames, whether or not the model then succeeds.

    `needle_retained` is judged on the frames kept whole: with keyframes (ViLAMP) every frame reaches the model
    but a non-keyframe only as one merged token, so a needle counts as retained only if a keyframe shows it.
    """
    selection = decoded.selection
    whole = subset(decoded.frames, selection.keyframes) if selection.keyframes else decoded.frames
    return dict(
        n_frames_decoded=decoded.n_decoded,
        frame_indices=selection.indices,
        keyframes=selection.keyframes,
        n_frames=len(selection.indices),
        n_keyframes=len(whole),
        needle_retained=needle_retained(sample, whole),
    )


def failure(sample: Sample, model: str, status: str, error: str, **fields: Any) -> SampleResult:
    return SampleResult(
        id=sample.id, task=sample.task, model=model, status=status, gold=sample.answer,  # type: ignore[arg-type]
        error=error, video_id=sample.video_id, breakdown=sample.breakdown, **fields,
    )


class Pipeline:
    def __init__(self, spec: ModelSpec, task: TaskSpec, prompt_profile: str | None = None) -> None:
        self.spec = spec
        self.task = task
        self.profile_name = prompt_profile or task.default_prompt
        self.profile = task.prompt(self.profile_name)
        self.selector: FrameSelector = SELECTORS.get(spec.selector.name)(**spec.selector.args)
        self.reducer: TokenReducer = REDUCERS.get(spec.reducer.name)(**spec.reducer.args)
        self.extractor: Extractor = EXTRACTORS.get(task.extractor)
        self._backbone = None
        # A streaming selector (ViLAMP up to 10K frames) decodes and encodes chunk by chunk inside `infer`, with
        # a reducer that reads frames the same way; `decode` only probes and plans for it.
        self.streaming = bool(getattr(self.selector, "streaming", False))
        if self.streaming and not hasattr(self.reducer, "reduce_stream"):
            raise ConfigError(f"model {spec.name!r}: selector {spec.selector.name!r} streams its frames, but "
                              f"reducer {spec.reducer.name!r} has no reduce_stream")

    @property
    def backbone(self) -> Any:
        """Loaded on first use, so a decode-only worker never loads weights."""
        if self._backbone is None:
            self._backbone = BACKBONES.get(self.spec.backbone.name)(**self.spec.backbone.args)
        return self._backbone

    def decode(self, sample: Sample) -> Decoded | SampleResult:
        timer = StageTimer()
        try:
            with timer("video_decode"):
                if not os.path.exists(sample.video):
                    raise VideoError("missing", f"video not found: {sample.video}")
                meta = probe(sample.video)
                if self.streaming:
                    planned = self.selector.plan(meta)
                    frames = Frames(planned, tuple(i / meta.fps for i in planned),  # pixels come later, in chunks
                                    np.zeros((len(planned), 0, 0, 3), np.uint8), backend="planned")
                    return Decoded(meta, FrameSelection(self.selector.name, planned), frames, 0, timer.seconds)
                candidates = read_frames(sample.video, self.selector.plan(meta))
            with timer("select"):
                selection = self.selector.select(sample, meta, candidates)
            frames = subset(candidates, selection.indices)
        except VideoError as exc:
            return failure(sample, self.spec.name, exc.status, str(exc), timings_s=timer.seconds)
        return Decoded(meta, selection, frames, len(candidates), timer.seconds)

    def infer(self, sample: Sample, decoded: Decoded) -> SampleResult:
        timer = StageTimer()
        timer.seconds.update(decoded.timings_s)
        common = outcome_fields(sample, decoded)
        try:
            with torch.inference_mode():
                if self.streaming:
                    # Decoded here, in the model actor (the selection needs the image-text encoder), a chunk at
                    # a time: no array of all N frames or of their patch features ever exists.
                    source = VideoSource(sample.video)
                    with timer("select"):
                        selection, frames = self.selector.select_stream(
                            sample, decoded.selection.indices, source, self.backbone)
                    decoded = dataclasses.replace(decoded, selection=selection, frames=frames, n_decoded=len(frames))
                    common = outcome_fields(sample, decoded)
                    with timer("vision"):  # encoding and merging interleave per chunk: one stage
                        context = ReductionContext(sample, selection, frames, self.backbone)
                        visual = self.reducer.reduce_stream(source, context)
                else:
                    visual = self.visual_tokens(sample, decoded, timer)
                subtitles = for_prompt(self.task.subtitles, sample, decoded.frames.timestamps_s)
                prompt = render(self.profile, sample, self.profile_name, subtitles)
                generation = self.generate(visual, prompt, self.generation_config(sample))
        except VideoError as exc:  # streaming methods decode inside infer
            return failure(sample, self.spec.name, exc.status, str(exc), timings_s=timer.seconds, **common)
        except (torch.OutOfMemoryError, MemoryError) as exc:  # GPU, or a CPU allocation that failed
            return failure(sample, self.spec.name, "oom", str(exc).splitlines()[0], timings_s=timer.seconds, **common)
        except Exception as exc:  # one bad sample must not end the run: record it with its traceback
            detail = "".join(traceback.format_exception_only(exc)).strip()
            return failure(sample, self.spec.name, "model_error", f"{detail}\n{traceback.format_exc(limit=-3)}",
                           timings_s=timer.seconds, **common)
        timer.seconds.update({f"llm_{k}": v for k, v in generation.timings_s.items()})
        prediction = self.extractor(generation.text, sample.options)
        return SampleResult(
            id=sample.id, task=sample.task, model=self.spec.name,
            status="ok" if prediction.answer is not None else "unparsed",
            gold=sample.answer, pred=prediction.answer,
            correct=sample.answer is not None and prediction.answer == sample.answer,
            raw_output=generation.text, video_id=sample.video_id, breakdown=sample.breakdown,
            visual_tokens=generation.visual_tokens, text_tokens=generation.text_tokens,
            visual_tokens_after_llm_prune=generation.visual_tokens_after_llm_prune,
            generated_tokens=generation.generated_tokens, timings_s=timer.seconds, **common,
        )

    def visual_tokens(self, sample: Sample, decoded: Decoded, timer: StageTimer) -> torch.Tensor:
        """The backbone's tokens for the decoded frames, reduced by the spec's reducer: [L, C]."""
        with timer("vision"):
            tokens = self.backbone.encode_frames(decoded.frames)
        with timer("reduce"):
            return self.reducer.reduce(tokens, ReductionContext(sample, decoded.selection, decoded.frames,
                                                                self.backbone))

    def generate(self, visual: torch.Tensor, prompt: Prompt, config: GenerationConfig) -> Generation:
        """The backbone's answer; in-LLM pruning (FastV) travels to generate (the reducer checked the hook)."""
        llm_prune = getattr(self.reducer, "llm_prune", None)
        return self.backbone.generate(visual, prompt, config, **({"llm_prune": llm_prune} if llm_prune else {}))

    def generation_config(self, sample: Sample) -> GenerationConfig:
        """The task's settings; a spec answering by option letter restricts the answer to this sample's letters."""
        if self.spec.answer == "option_letter" and sample.options:
            return dataclasses.replace(self.task.generation, choices=tuple(LETTERS[: len(sample.options)]))
        return self.task.generation

    def run(self, sample: Sample, device: str = "cpu") -> SampleResult:
        """Both halves in this process, with the sample's total time and peak memory."""
        timer = StageTimer()
        with PeakMemory(device) as memory, timer("total"):
            decoded = self.decode(sample)
            result = decoded if isinstance(decoded, SampleResult) else self.infer(sample, decoded)
        timings = {**result.timings_s, "total": timer.seconds["total"]}
        return dataclasses.replace(result, timings_s=timings, peak_rss_mb=round(memory.peak_mb, 1))
