"""Real transformers backbone classes (LLaVA-OneVision, LLaVA-Video, Qwen2.5-VL) from tiny random checkpoints:
from_pretrained round trip, needle end to end, hook shapes, Qwen2.5-VL time positions, FastV vs a masked run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import LlavaOnevisionForConditionalGeneration, Qwen2_5_VLForConditionalGeneration
from transformers.video_utils import VideoMetadata

from harness.backbones import BACKBONES
from harness.backbones.fastv import causal_mask, prefill_pruned
from harness.cli import main
from harness.core.config import ConfigError
from harness.core.records import Frames, FrameSelection, GenerationConfig, LlmPrune, Prompt, Sample, VisualSequence
from harness.core.status import ANSWERED
from harness.data.samples import load_samples
from harness.data.tasks import get_task
from harness.evaluate import EvalRequest, evaluate
from harness.hf.loading import resolve_checkpoint
from harness.hf.text import chat_ids
from harness.methods.hooks import HookUnavailable
from harness.methods.reduction import ReductionContext
from harness.model.specs import MODELS
from harness.run.config import RunnerConfig
from harness.run.pipeline import Pipeline
from harness.vilamp.dfm import CosineScorer, merge
from harness.vilamp.reducer import DFMReducer

FAMILIES = ("llava-ov", "llava-video", "qwen25vl")
PROMPT = Prompt(system="", user="What happens in the video?\nA. one\nB. two\nC. three\nD. four")


@pytest.fixture(scope="module", params=FAMILIES)
def backbone(request):
    return BACKBONES.get(request.param).load(tiny_seed=0)


def frames(n: int = 8, step: int = 30, fps: float = 30.0, seed: int = 0) -> Frames:
    pixels = np.random.default_rng(seed).integers(0, 255, (n, 90, 160, 3), dtype=np.uint8)
    indices = tuple(range(0, n * step, step))
    return Frames(indices=indices, timestamps_s=tuple(i / fps for i in indices), pixels=pixels)


def test_tiny_checkpoint_is_the_real_class_loaded_back_with_its_processor(backbone):
    expected = Qwen2_5_VLForConditionalGeneration if backbone.name.startswith("qwen") \
        else LlavaOnevisionForConditionalGeneration
    assert type(backbone.model) is expected
    directory = backbone.model.name_or_path  # from_pretrained records the directory it read
    config = json.loads(open(f"{directory}/config.json").read())
    assert config["architectures"] == [expected.__name__]
    assert type(backbone.processor).__name__ in ("LlavaOnevisionProcessor", "Qwen2_5_VLProcessor")
    assert backbone.tokenizer.chat_template  # saved with the processor, applied by chat_ids


def test_llava_video_is_its_own_checkpoint_of_the_llava_ov_class():
    ov, video = BACKBONES.get("llava-ov").load(tiny_seed=0), BACKBONES.get("llava-video").load(tiny_seed=0)
    assert type(ov.model) is type(video.model)
    assert ov.model.name_or_path != video.model.name_or_path
    assert (ov.name, video.name) == ("llava-ov-tiny", "llava-video-tiny")
    ov_weights, video_weights = ov.model.state_dict(), video.model.state_dict()
    assert ov_weights.keys() == video_weights.keys()
    assert not torch.equal(ov_weights["lm_head.weight"], video_weights["lm_head.weight"])  # its own weights


def _check_needle_results(results, family):
    assert len(results) == 2
    per_run = {"qwen25vl": 8 * 16}.get(family, 16 * 16 + 1)  # Qwen: 2 frames per group; LLaVA: + newline
    for result in results:
        assert result.status in ANSWERED, result.error
        assert len(result.frame_indices) == 16 and result.generated_tokens >= 1
        assert {"vision", "llm_prefill", "llm_decode"} <= set(result.timings_s)
        assert result.visual_tokens == per_run


def test_needle_end_to_end_on_ray(ray_cluster, tmp_path):
    outcome = evaluate(EvalRequest(task="needle", model="qwen25vl-tiny-uniform", limit=2, out=str(tmp_path),
                                   wandb=False, runner=RunnerConfig(workers=1)))
    _check_needle_results(outcome.results, "qwen25vl")


@pytest.mark.parametrize("family", ["llava-ov", "llava-video"])
def test_needle_end_to_end_in_process(family):
    task = get_task("needle")
    pipeline = Pipeline(MODELS.get(f"{family}-tiny-uniform"), task)
    _check_needle_results([pipeline.run(s) for s in load_samples(task, None, 2)], family)


def test_hooks_return_tensors_of_the_right_shapes(backbone):
    clip = frames(8)
    encoded = backbone.encode_frames(clip)
    tokens = encoded.tokens
    groups = 8 // encoded.frames_per_row
    assert encoded.frames_per_row == (2 if backbone.placement == "grid" else 1)
    assert encoded.timestamps_s == clip.timestamps_s
    assert tokens.shape[0] == groups and tokens.shape[2] == backbone.hidden_size
    m = tokens.shape[1]
    assert (encoded.grid is not None) == (backbone.placement == "grid")
    if encoded.grid is not None:
        assert encoded.grid[0] == groups and encoded.grid[1] * encoded.grid[2] == m
    pre, post = backbone.vision_features(clip)
    assert pre.shape[0] == groups and torch.allclose(post, tokens)
    received, keys = backbone.vision_attention(clip)
    assert received.shape == (groups, m) and keys.shape[:2] == (groups, m) and torch.isfinite(received).all()
    assert (received > 0).all()
    text = backbone.embed_text("What happens?")
    assert text.ndim == 2 and text.shape[1] == backbone.hidden_size
    embeds, n_visual, n_text = backbone.prompt_embeds(VisualSequence.whole(encoded), PROMPT)
    assert embeds.shape == (1, n_visual + n_text, backbone.hidden_size)
    out = backbone.generate(VisualSequence.whole(encoded, LlmPrune.fastv(1, 0.25)), PROMPT,
                            GenerationConfig(max_new_tokens=3))
    assert out.visual_tokens_after_llm_prune is not None and out.visual_tokens_after_llm_prune < out.visual_tokens
    assert {"llm_prune", "vision_attention", "vision_features", "embed_text", "prompt_embeds"} <= backbone.hooks


def test_qwen_positions_match_the_official_processor_path_and_follow_real_time():
    qwen = BACKBONES.get("qwen25vl").load(tiny_seed=0)
    clip = frames(8, step=30, fps=30.0)  # one frame per second
    encoded = qwen.encode_frames(clip)
    ids, at = chat_ids(qwen.tokenizer, PROMPT, {"type": "video"}, qwen.video_token_id, "<|video_pad|>")
    ours = qwen.video_positions(ids, at, encoded)
    # official: processor with video metadata → second_per_grid_ts → the model's get_rope_index
    meta = VideoMetadata(total_num_frames=8 * 30, fps=30.0, frames_indices=list(clip.indices))
    batch = qwen.processor(text=[qwen.tokenizer.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": PROMPT.user}]}],
        tokenize=False, add_generation_prompt=True)], videos=[clip.pixels], video_metadata=[meta],
        do_sample_frames=False, cap_pixels_per_frame=True, return_tensors="pt")
    assert float(batch["second_per_grid_ts"][0]) == pytest.approx(2.0)
    official, _ = qwen.model.model.get_rope_index(
        batch["input_ids"], batch["mm_token_type_ids"], video_grid_thw=batch["video_grid_thw"],
        second_per_grid_ts=batch["second_per_grid_ts"])
    assert torch.equal(ours, official[:, 0])
    # 4 s between frames instead of 1 s: the temporal positions of later groups move 4× as far
    slow = qwen.video_positions(ids, at, qwen.encode_frames(frames(8, step=120, fps=30.0)))
    video = slice(at, at + encoded.flat.shape[0])
    assert torch.equal(slow[0, video] - at, (ours[0, video] - at) * 4)
    assert torch.equal(slow[1:, video], ours[1:, video])


def test_qwen_selected_tokens_keep_their_positions_and_merged_tokens_need_declared_rows():
    qwen = BACKBONES.get("qwen25vl").load(tiny_seed=0)
    encoded = qwen.encode_frames(frames(8))
    whole = qwen._inputs(VisualSequence.whole(encoded), PROMPT)
    full, at = whole.positions, whole.visual.start
    keep = torch.tensor([0, 5, 17, 40, 59])
    part = qwen._inputs(VisualSequence.select(encoded, keep), PROMPT).positions
    assert torch.equal(part[:, 0, at : at + len(keep)], full[:, 0, at + keep])
    assert torch.equal(part[:, 0, at + len(keep) :], full[:, 0, at + encoded.flat.shape[0] :])  # text after
    merged = encoded.flat[:4].mean(0, keepdim=True)
    declared = VisualSequence(merged, torch.tensor([2]), encoded)
    assert torch.equal(qwen._inputs(declared, PROMPT).positions[:, 0, at], full[:, 0, at + 2])  # placed at row 2
    qwen.generate(declared, PROMPT, GenerationConfig(max_new_tokens=1))
    with pytest.raises(HookUnavailable, match="declares no rows") as error:
        qwen.generate(VisualSequence(merged), PROMPT, GenerationConfig(max_new_tokens=1))
    assert "\n" not in str(error.value)
    n = encoded.flat.shape[0]
    with pytest.raises(ValueError, match=rf"token rows must lie in \[0, {n}\)"):
        qwen.generate(VisualSequence(merged, torch.tensor([n]), encoded), PROMPT, GenerationConfig())


def test_qwen_dfm_merges_temporal_groups_and_places_merged_tokens_at_their_argmax_weight_row():
    qwen = BACKBONES.get("qwen25vl").load(tiny_seed=0)
    video = frames(7)  # odd: the processor pads the last group with frame 6 itself
    encoded = qwen.encode_frames(video)
    tokens = encoded.tokens
    groups, m = tokens.shape[:2]
    assert groups == 4
    whole = qwen._inputs(VisualSequence.whole(encoded), PROMPT)
    at = whole.visual.start
    full = whole.positions[:, 0, at:]
    sample = Sample(id="s", task="needle", video="unused.mp4", question="Which word appeared?", options=(),
                    answer=None)
    # keyframes 3 and 6 (the padded tail): key groups 1 and 3; groups 0 and 2 merge against reference group 1
    selection = FrameSelection("dks", video.indices, (video.indices[3], video.indices[6]))
    visual = DFMReducer().reduce(encoded, ReductionContext(sample, selection, video, qwen))
    assert len(visual) == 2 * m + 2
    query = qwen.embed_text(sample.question).float().mean(0)
    scores = CosineScorer(query).scores(tokens[[0, 2]], tokens[[1, 1]])
    argmax_rows = torch.tensor([0, 2]) * m + scores.argmax(-1)
    part = qwen._inputs(visual, PROMPT).positions[:, 0, at:]
    grid_rows = torch.arange(groups * m).reshape(groups, m)
    expected = torch.cat([argmax_rows[:1], grid_rows[1], argmax_rows[1:], grid_rows[3]])
    assert torch.equal(part[:, : len(expected)], full[:, expected])
    assert torch.allclose(visual.tokens[m + 1], merge(tokens[[2]], scores[1:])[0])
    assert part[0, 0] < part[0, m + 1]  # the merged tokens of groups 0 and 2 keep their groups' times


def _masked_reference_logits(model, embeds, positions, visual, kept, layer):
    """The unpruned model forward, with the dropped visual tokens masked out as keys in every layer >= K:
    FastV's definition, computed without removing any row."""
    n = embeds.shape[1]
    dropped = sorted(set(visual) - set(kept))
    base = causal_mask(n, embeds.dtype, embeds.device)
    masked = base.clone()
    masked[..., dropped] = torch.finfo(embeds.dtype).min
    lm = model.model.language_model

    def swap(index):
        def hook(_module, args, kwargs):
            kwargs["attention_mask"] = masked if index >= layer else base
            return args, kwargs
        return hook

    handles = [block.register_forward_pre_hook(swap(i), with_kwargs=True) for i, block in enumerate(lm.layers)]
    try:
        with torch.inference_mode():
            out = model(inputs_embeds=embeds, position_ids=positions, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return out.logits[0, -1]


@pytest.mark.parametrize("family", ["qwen25vl", "llava-ov"])
def test_fastv_matches_a_masked_reference_run(family):
    bb = BACKBONES.get(family).load(tiny_seed=0)
    encoded = bb.encode_frames(frames(8))
    prune = LlmPrune.fastv(1, 0.3)
    inputs = bb._inputs(VisualSequence.whole(encoded), PROMPT)
    embeds, visual = inputs.embeds, inputs.visual
    assert len(visual) == encoded.flat.shape[0]  # LLaVA-OV: the trailing image_newline is never pruned
    positions = inputs.positions if family == "qwen25vl" else torch.arange(embeds.shape[1])[None]
    with torch.inference_mode():
        logits, _, kept, _ = prefill_pruned(bb.model, embeds, positions, visual, prune)
    assert len(kept) == int(np.ceil(0.3 * len(visual)))
    reference = _masked_reference_logits(bb.model, embeds, positions, visual, kept, prune.layers[0])
    torch.testing.assert_close(logits.float(), reference.float(), atol=2e-4, rtol=1e-4)
    unpruned = _masked_reference_logits(bb.model, embeds, positions, visual, list(visual), prune.layers[0])
    assert not torch.allclose(reference, unpruned, atol=1e-5)  # pruning did change the answer distribution
    first = bb.generate(VisualSequence.whole(encoded, prune), PROMPT, GenerationConfig(max_new_tokens=1))
    assert first.text == bb.tokenizer.decode([int(reference.argmax())], skip_special_tokens=True)


def test_attention_implementation_and_dtype_options():
    eager = BACKBONES.get("qwen25vl").load(tiny_seed=0, attn_implementation="eager")
    sdpa = BACKBONES.get("qwen25vl").load(tiny_seed=0)
    assert eager.model.config._attn_implementation == "eager"
    clip = frames(4)
    a = eager.generate(VisualSequence.whole(eager.encode_frames(clip)), PROMPT, GenerationConfig(max_new_tokens=4))
    b = sdpa.generate(VisualSequence.whole(sdpa.encode_frames(clip)), PROMPT, GenerationConfig(max_new_tokens=4))
    assert a.text == b.text
    assert BACKBONES.get("llava-ov").load(tiny_seed=0, dtype="bfloat16").model.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown attn_implementation"):
        BACKBONES.get("llava-ov").load(tiny_seed=0, attn_implementation="fast")


@pytest.mark.parametrize("model", ["llava-ov-7b-uniform", "llava-video-7b-uniform", "qwen25vl-7b-uniform"])
def test_7b_spec_offline_fails_with_one_line_and_exit_2(model, capsys):
    assert main(["eval", "--task", "needle", "--model", model, "--limit", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not in the local Hugging Face cache" in err and "hf download" in err


def test_checkpoint_directory_errors(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        resolve_checkpoint(str(tmp_path))
    with pytest.raises(ValueError, match="no such directory"):
        resolve_checkpoint(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="exactly one of"):
        BACKBONES.get("qwen25vl").load()


def test_each_backbone_names_the_directory_it_loads(tmp_path, monkeypatch):
    """What the cost model reads a config.json from: the tiny checkpoint, a local directory, or None."""
    local = tmp_path / "local"
    local.mkdir()
    (local / "config.json").write_text("{}")
    monkeypatch.setenv("HARNESS_VILAMP", str(tmp_path / "no-vilamp-here"))
    tiny = BACKBONES.get("tiny").checkpoint_dir()
    assert tiny is not None and (tiny / "config.json").is_file()
    assert BACKBONES.get("qwen25vl").checkpoint_dir(tiny_seed=0) == BACKBONES.get("qwen25vl").tiny_checkpoint(0)
    assert BACKBONES.get("llava-ov").checkpoint_dir(checkpoint=str(local)) == local
    assert BACKBONES.get("llava-ov").checkpoint_dir(checkpoint="llava-hf/some-hub-id") is None
    assert BACKBONES.get("canary").checkpoint_dir(checkpoint=str(local)) == local
    assert BACKBONES.get("vilamp").checkpoint_dir() is None  # the 7B is not on this machine
    assert BACKBONES.get("vilamp").checkpoint_dir(checkpoint=str(local)) == local
    assert (BACKBONES.get("vilamp-tiny").checkpoint_dir(seed=0) / "config.json").is_file()
    assert BACKBONES.get("fixed-cost").checkpoint_dir(step_s=0.1) is None
    with pytest.raises(ConfigError, match="unknown argument 'sed'"):
        BACKBONES.get("vilamp-tiny").checkpoint_dir(sed=0)
