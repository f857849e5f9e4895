"""lmms-eval model plugin: `lmms-eval --model vilamp_harness --model_args spec=<spec> --tasks …` runs any of our
MODEL specs (backbone × frame selector × token reducer) inside lmms-eval 0.7.

Registered through the `lmms_eval.models` entry point (pyproject.toml) and imported only by lmms-eval, so it
lives in lmms-eval's own environment (`make lmms-venv`: .venv-lmms, with this package installed --no-deps).
lmms-eval renders the prompt (`ctx`) and hands over the video path(s); frames are chosen by the spec's
selector, encoded, reduced and answered by our backbone, greedily, with `max_new_tokens` capped at the
task's setting (lmms-eval's vLLM wrapper uses it as a floor, PR #1232).
"""

from __future__ import annotations

from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest

from harness.core.config import ConfigError
from harness.core.measure import StageTimer
from harness.core.records import GenerationConfig, Prompt, Sample
from harness.model.preflight import check_spec
from harness.model.specs import MODELS
from harness.model.video_model import VideoModel

MODEL_ID = "vilamp_harness"
DEFAULT_MAX_NEW_TOKENS = 16  # when a task sets none (all four of our benchmarks do)


def manifest() -> ModelManifest:
    """Entry-point payload: lmms-eval imports the class lazily from this path."""
    return ModelManifest(model_id=MODEL_ID, simple_class_path="harness.interop.lmms_plugin.HarnessLMM")


class HarnessLMM(lmms):
    is_simple = True

    def __init__(self, spec: str = "tiny-uniform", batch_size: int | str = 1, max_batch_size: int | None = None,
                 device: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        if kwargs:  # a typo in --model_args must not be silently ignored
            raise ConfigError(f"{MODEL_ID}: unknown model_args {sorted(kwargs)}; valid: spec=<name>")
        # lmms-eval's CLI passes its --batch_size / --device to every model (evaluator.simple_evaluate); samples
        # run one at a time here, on the device the spec's backbone chooses.
        if str(batch_size) != "1":
            raise ConfigError(f"{MODEL_ID}: batch_size={batch_size} is not supported; run with --batch_size 1")
        self.spec = MODELS.get(spec)
        check_spec(self.spec)
        # The model half alone: lmms-eval renders the prompt and scores the answer.
        self.model = VideoModel(self.spec)
        if self.model.streaming:
            raise ConfigError(f"{MODEL_ID}: spec {spec!r} streams frames inside the model; run it with `harness eval`")

    def _answer(self, ctx: str, gen_kwargs: dict[str, Any], video: str, doc_id: int, task: str) -> str:
        sample = Sample(id=f"{task}/{doc_id}", task=task, video=video, question=ctx, options=(), answer=None)
        timer = StageTimer()
        decoded = self.model.decode(sample, timer)  # a missing / undecodable video raises: no blind answer
        visual, _ = self.model.visual(sample, decoded, timer)
        cap = int(gen_kwargs.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
        return self.model.generate(visual, Prompt(system="", user=ctx), GenerationConfig(max_new_tokens=cap)).text

    def generate_until(self, requests: list[Instance]) -> list[str]:
        answers = []
        for request in requests:
            ctx, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            visuals = doc_to_visual(self.task_dict[task][split][doc_id])
            videos = [v for v in visuals if isinstance(v, str)]
            if len(videos) != 1:
                raise ValueError(f"{MODEL_ID}: task {task!r} doc {doc_id} gave {len(visuals)} visuals; "
                                 "one video path expected")
            answers.append(self._answer(ctx, dict(gen_kwargs), videos[0], doc_id, task))
        return answers

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError(f"{MODEL_ID} answers by generation only (generate_until tasks)")

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError(f"{MODEL_ID} answers single-turn questions only")
