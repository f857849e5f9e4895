"""Every baseline spec runs one sample through the real pipeline on the tiny backbone and lists its hook."""

import dataclasses
import math

import pytest

from harness.cli import cmd_models
from harness.run.pipeline import Pipeline
from harness.core.records import Sample
from harness.model.specs import MODELS, Component
from harness.data.tasks import get_task

# spec → (hook listed by `harness models`, visual tokens entering the LLM for a 6 s video at 10 fps)
EXPECTED = {
    "tiny-uniform-vilamp-budget": ("none", 16 * 6 + 1),  # ViLAMP: 6 frames at 1 fps, all keyframes
    "tiny-topk": ("image_text_encoder", 16 * 6 + 1),  # 1 fps pool of 6 < k: every candidate
    "tiny-aks": ("image_text_encoder", 16 * 6 + 1),
    "tiny-bolt": ("image_text_encoder", 16 * 6 + 1),
    "tiny-visionzip": ("vision_attention", 16 * 4 + 1),  # 16 frames × 25% of 16 tokens
    "tiny-tome": ("visual", 64 + 1),  # 25% of 256
    "tiny-dycoke": ("visual", 4 * (16 + 3 * 4) + 1),  # 4 windows: anchor + 3 × ⌊0.3 · 16⌋
    "tiny-fastv": ("llm_prune", 256 + 1),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_runs_one_sample(name, write_test_video):
    video = write_test_video(num_frames=60, fps=10.0)
    sample = Sample(id="s", task="needle", video=str(video.path), question="Which word appeared?",
                    options=("APPLE", "TIGER", "CLOUD", "PIANO"), answer=1, evidence_spans_s=((2.0, 3.0),))
    result = Pipeline(MODELS.get(name), get_task("needle")).run(sample)
    assert result.status == "ok" and result.raw_output in "ABCD", result.error  # answers by option letter
    assert result.visual_tokens == EXPECTED[name][1]
    assert result.needle_retained is not None and result.n_frames_decoded >= len(result.frame_indices) > 0
    if name == "tiny-fastv":
        assert result.visual_tokens_after_llm_prune == math.ceil(0.5 * 256) + 1
    else:
        assert result.visual_tokens_after_llm_prune is None


REAL_TINY = sorted(n for n in MODELS.names() if n.split("-tiny-")[0] in ("llava-ov", "llava-video", "qwen25vl"))


@pytest.mark.parametrize("name", REAL_TINY)
def test_every_real_backbone_comparison_spec_runs_one_sample(name, write_test_video):
    video = write_test_video(num_frames=60, fps=10.0)
    sample = Sample(id="s", task="needle", video=str(video.path), question="Which word appeared?",
                    options=("APPLE", "TIGER", "CLOUD", "PIANO"), answer=1, evidence_spans_s=((2.0, 3.0),))
    result = Pipeline(MODELS.get(name), get_task("needle")).run(sample)
    assert result.status == "ok" and result.raw_output in "ABCD", result.error
    assert result.visual_tokens > 0 and result.needle_retained is not None


def test_qwen_vilamp_tf_merges_non_key_groups_end_to_end(write_test_video):
    """K=2 keyframes of 12 frames: most temporal groups (2 frames per row) merge to one token each."""
    video = write_test_video(num_frames=12, fps=1.0)
    sample = Sample(id="s", task="needle", video=str(video.path), question="Which word appeared?",
                    options=("APPLE", "TIGER", "CLOUD", "PIANO"), answer=1, evidence_spans_s=((2.0, 3.0),))
    spec = MODELS.get("qwen25vl-tiny-vilamp-tf")
    spec = dataclasses.replace(spec, selector=Component("dks-stream", {**spec.selector.args, "k": 2}))
    pipeline = Pipeline(spec, get_task("needle"))
    result = pipeline.run(sample)
    assert result.status == "ok" and result.raw_output in "ABCD", result.error
    frames, keys = result.frame_indices, set(result.keyframes)
    key_groups = [any(i in keys for i in frames[g : g + 2]) for g in range(0, len(frames), 2)]
    assert len(frames) == 12 and 0 < sum(key_groups) < len(key_groups)
    m = pipeline.backbone._encoded[0].shape[0] // len(key_groups)  # tokens per temporal group
    assert result.visual_tokens == m * sum(key_groups) + key_groups.count(False)


def test_comparison_specs_exist_on_each_backbone():
    for family in ("llava-ov", "llava-video", "qwen25vl"):
        for size in ("tiny", "7b"):
            methods = {n.removeprefix(f"{family}-{size}-") for n in MODELS.names() if n.startswith(f"{family}-{size}-")}
            assert {"uniform", "topk", "aks", "bolt", "dycoke", "fastv"} <= methods, (family, size)
            assert "vilamp-tf" in methods, (family, size)  # DFM declares its merged tokens' M-RoPE rows
            # VisionZip/ToMe tokens have no M-RoPE position in Qwen2.5-VL; its tokens per frame vary with frame size
            merging = {"visionzip", "tome", "uniform-vilamp-budget"}
            assert (merging <= methods) == (family != "qwen25vl") and not (merging & methods and family == "qwen25vl")


def test_models_lists_description_and_hook(capsys):
    assert cmd_models() == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == set(MODELS.names())
    for name, (hook, _) in EXPECTED.items():
        assert f"hook: {hook} " in lines[name] and MODELS.get(name).description in lines[name]


def test_pipeline_generate_carries_fastv_pruning_for_callers_outside_infer(write_test_video):
    """The lmms-eval plugin answers through Pipeline.visual_tokens + Pipeline.generate: FastV must prune there too."""
    from harness.core.measure import StageTimer
    from harness.core.records import GenerationConfig, Prompt

    video = write_test_video(num_frames=60, fps=10.0)
    sample = Sample(id="s", task="needle", video=str(video.path), question="Which word appeared?", options=(),
                    answer=None)
    pipeline = Pipeline(MODELS.get("tiny-fastv"), get_task("needle"))
    decoded = pipeline.decode(sample)
    visual = pipeline.visual_tokens(sample, decoded, StageTimer())
    generation = pipeline.generate(visual, Prompt(system="", user="What moves?"), GenerationConfig(max_new_tokens=2))
    assert generation.visual_tokens == 256 + 1
    assert generation.visual_tokens_after_llm_prune == math.ceil(0.5 * 256) + 1
