"""The budget `harness models` shows before a run is what a run feeds the LLM: every tiny spec with a fixed budget,
on a video long enough to fill its selection, enters (and, in-LLM, keeps) exactly the tokens its listing says."""

from __future__ import annotations

import pytest

from harness.core.records import Sample
from harness.data.tasks import get_task
from harness.model.budget import Budget, budget
from harness.model.specs import MODELS
from harness.run.pipeline import Pipeline

FIXED = [name for name in MODELS.names() if name.startswith("tiny-") and MODELS.get(name).name == name
         and budget(MODELS.get(name)) is not None]


@pytest.fixture(scope="module")
def long_sample(tmp_path_factory):
    from tests.videos import write_video

    # 70 s at 2 fps: the 1 fps pool (70) fills top-32, AKS-32, BOLT-32 and key clips' 16 anchors × 4
    video = write_video(tmp_path_factory.mktemp("budget") / "long.mp4", num_frames=140, fps=2.0)
    return Sample(id="long", task="needle", video=str(video.path), question="Which word appeared?",
                  options=("APPLE", "TIGER", "CLOUD", "PIANO"), answer=1, evidence_spans_s=((2.0, 3.0),))


def test_the_fixed_budget_specs_cover_every_family():
    assert {"tiny-uniform", "tiny-topk", "tiny-keyclips", "tiny-pyramiddrop", "tiny-framefusion", "tiny-fastvid",
            "tiny-vidcom2", "tiny-adardkey", "tiny-blind"} <= set(FIXED)
    assert budget(MODELS.get("tiny-uniform-1fps")) is None and budget(MODELS.get("vilamp-tf")) is None


@pytest.mark.parametrize("name", FIXED)
def test_a_run_feeds_the_llm_what_the_listing_says(name, long_sample):
    expected = budget(MODELS.get(name))
    result = Pipeline(MODELS.get(name), get_task("needle")).run(long_sample)
    assert result.status == "ok", result.error
    assert len(result.frame_indices) == expected.frames and result.visual_tokens == expected.entering
    if expected.in_llm:
        assert result.visual_tokens_after_llm_prune == expected.in_llm[-1]


def test_the_listing_reads_as_frames_tokens_and_in_llm_stages():
    assert str(budget(MODELS.get("tiny-pyramiddrop"))) == "16f×16 → 257 → 65 in LLM"
    assert str(budget(MODELS.get("tiny-keyclips"))) == "64f×4 → 257"  # 16 anchors × 4 frames at 2 × 2 tokens
    assert str(budget(MODELS.get("llava-ov-7b-pyramiddrop"))) == "32f×196 → 6273 → 3137 → 1569 → 785 in LLM"
    assert str(budget(MODELS.get("tiny-framefusion"))) == "16f×16 → 257, mean 62.5% in LLM"
    assert str(Budget(16, None, None)) == "16f×? → varies"  # Qwen2.5-VL: tokens follow the frame size
