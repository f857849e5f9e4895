"""One sample through the whole path: the model half (harness.model.video_model) and the task half
(harness.scoring.scorer), into one `SampleResult`.

Split in two so a runner can put them on different workers: `decode` (CPU: video and frame selection) and
`infer` (the model, then scoring). Every failure becomes a `SampleResult` status through
harness.core.status.failure_status; nothing raises.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Sequence
from typing import Any

import torch

from harness.core.measure import PeakMemory, StageTimer
from harness.core.records import Frames, Sample, SampleResult
from harness.core.status import Status, failure_status, first_line
from harness.data.tasks import TaskSpec
from harness.methods.selection import SELECTORS
from harness.model.specs import ModelSpec
from harness.model.video_model import Decoded, VideoModel, subset
from harness.scoring.scorer import TaskScorer
from harness.video.reader import VideoError

__all__ = ["Decoded", "Pipeline", "decodes_in_model", "failure", "pipelines"]


def needle_retained(sample: Sample, frames: Frames) -> bool | None:
    """Whether every evidence span still has a frame among those the model sees (None: unknown)."""
    if not sample.evidence_spans_s:
        return None
    eps = 1e-6  # timestamps are k / fps; keep exact span edges inside
    return all(
        any(start - eps <= t < end - eps for t in frames.timestamps_s) for start, end in sample.evidence_spans_s
    )


def pipelines(spec: ModelSpec, tasks: Sequence[TaskSpec], prompt_profile: str | None = None) -> dict[str, Pipeline]:
    """One pipeline per task, by task name, all on one VideoModel (one backbone)."""
    model = VideoModel(spec)
    return {task.task: Pipeline(spec, task, prompt_profile, model) for task in tasks}


def decodes_in_model(spec: ModelSpec) -> bool:
    """Whether the model actor must decode the video itself instead of a CPU decode worker: a streaming selector's
    frames are too many to travel as one array (ViLAMP at 10K frames)."""
    return SELECTORS.get(spec.selector.name).streaming


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


def failure(sample: Sample, model: str, status: Status, error: str, **fields: Any) -> SampleResult:
    return SampleResult(
        id=sample.id, task=sample.task, model=model, status=status, gold=sample.answer,
        error=error, video_id=sample.video_id, breakdown=sample.breakdown, **fields,
    )


def error_text(exc: BaseException, status: Status) -> str:
    """One line for expected failures; a model error keeps its traceback tail for debugging."""
    if status != "model_error":
        return first_line(exc)
    detail = "".join(traceback.format_exception_only(exc)).strip()
    return f"{detail}\n{traceback.format_exc(limit=-3)}"


class Pipeline:
    """`model`: a VideoModel to share (the pipelines of a suite's tasks in one actor load the backbone once)."""

    def __init__(self, spec: ModelSpec, task: TaskSpec, prompt_profile: str | None = None,
                 model: VideoModel | None = None) -> None:
        self.spec = spec
        self.task = task
        self.model = model or VideoModel(spec)
        self.scorer = TaskScorer(task, prompt_profile)

    @property
    def backbone(self) -> Any:
        """Loaded on first use, so a decode-only worker never loads weights."""
        return self.model.backbone

    def decode(self, sample: Sample) -> Decoded | SampleResult:
        timer = StageTimer()
        try:
            return self.model.decode(sample, timer, self.task.video_backend)
        except VideoError as exc:
            return failure(sample, self.spec.name, exc.status, str(exc), timings_s=timer.seconds)

    def infer(self, sample: Sample, decoded: Decoded) -> SampleResult:
        timer = StageTimer()
        timer.seconds.update(decoded.timings_s)
        common = outcome_fields(sample, decoded)
        try:
            with torch.inference_mode():
                visual, decoded = self.model.visual(sample, decoded, timer, self.task.video_backend)
                common = outcome_fields(sample, decoded)
                prompt = self.scorer.prompt(sample, decoded.frames.timestamps_s)
                generation = self.model.generate(visual, prompt,
                                                 self.model.generation_config(self.scorer.generation, sample))
        except Exception as exc:  # one bad sample must not end the run: record it with its status
            status = failure_status(exc)
            if isinstance(exc, VideoError):  # a streaming decode failed: its planned frames never reached the model
                common = {}
            return failure(sample, self.spec.name, status, error_text(exc, status), timings_s=timer.seconds, **common)
        timer.seconds.update({f"llm_{k}": v for k, v in generation.timings_s.items()})
        if len(visual) == 0 and common["needle_retained"]:  # frames were kept, but no token of them reached the LLM
            common["needle_retained"] = False
        score = self.scorer.score(sample, generation.text)
        return SampleResult(
            id=sample.id, task=sample.task, model=self.spec.name, status=score.status,
            gold=sample.answer, pred=score.prediction.answer, correct=score.correct,
            raw_output=generation.text, video_id=sample.video_id, breakdown=sample.breakdown,
            visual_tokens=generation.visual_tokens, text_tokens=generation.text_tokens,
            visual_tokens_after_llm_prune=generation.visual_tokens_after_llm_prune,
            generated_tokens=generation.generated_tokens, timings_s=timer.seconds, **common,
        )

    def run(self, sample: Sample, device: str = "cpu") -> SampleResult:
        """Both halves in this process, with the sample's total time and peak memory."""
        timer = StageTimer()
        with PeakMemory(device) as memory, timer("total"):
            decoded = self.decode(sample)
            result = decoded if isinstance(decoded, SampleResult) else self.infer(sample, decoded)
        timings = {**result.timings_s, "total": timer.seconds["total"]}
        return dataclasses.replace(result, timings_s=timings, peak_rss_mb=round(memory.peak_mb, 1))
