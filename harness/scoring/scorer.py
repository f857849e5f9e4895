"""The task half of a sample's path: render the task's prompt, extract the answer, score it.

It knows the task (prompt profile, subtitles, extractor, generation settings) and nothing of the model; the
model half (harness.model.video_model) knows the model and nothing of the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.core.records import GenerationConfig, Prediction, Prompt, Sample
from harness.core.status import Status
from harness.data.subtitles import for_prompt
from harness.data.tasks import PromptProfile, TaskSpec
from harness.scoring.extract import EXTRACTORS, Extractor, extractor_name
from harness.scoring.prompts import render


@dataclass(frozen=True)
class Score:
    prediction: Prediction
    status: Status  # "ok", or "unparsed" when no option could be read from the reply
    correct: bool


class TaskScorer:
    def __init__(self, task: TaskSpec, prompt_profile: str | None = None) -> None:
        self.task = task
        self.profile_name = prompt_profile or task.default_prompt
        self.profile: PromptProfile = task.prompt(self.profile_name)  # ConfigError names the valid profiles
        self.extractor: Extractor = EXTRACTORS.get(extractor_name(task))

    @property
    def generation(self) -> GenerationConfig:
        return self.task.generation

    def prompt(self, sample: Sample, timestamps_s: Sequence[float]) -> Prompt:
        """The sample's prompt; subtitles (when the task has them) are chosen by the frames' timestamps."""
        return render(self.profile, sample, self.profile_name, for_prompt(self.task.subtitles, sample, timestamps_s))

    def score(self, sample: Sample, reply: str) -> Score:
        prediction = self.extractor(reply, sample.options)
        return Score(prediction, "ok" if prediction.answer is not None else "unparsed",
                     sample.answer is not None and prediction.answer == sample.answer)
