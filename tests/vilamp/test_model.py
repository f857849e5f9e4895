"""The ViLAMP model in the official parameter layout: tiny checkpoint round trip, key mapping, 7B shapes."""

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, CLIPImageProcessor

from harness.backbones import BACKBONES
from harness.cli import main
from harness.core.records import Frames, GenerationConfig, LlmPrune, Prompt, VisualSequence
from harness.data.samples import ensure_data, resolve_root
from harness.data.tasks import get_task
from harness.methods.hooks import HookUnavailable
from harness.vilamp import vilamp_visual_tokens
from harness.vilamp.checkpoint import (
    CheckpointLayoutError,
    build_model,
    load_official,
    save_official,
    tiny_vilamp_checkpoint,
)
from harness.vilamp.model import ViLAMPBackbone, ViLAMPTinyBackbone


@pytest.fixture(scope="module")
def checkpoint():
    return tiny_vilamp_checkpoint(seed=0)  # in the tests' private cache


def test_every_key_of_the_official_layout_loads(checkpoint):
    stored = load_file(str(checkpoint / "model.safetensors"))
    model, cfg = load_official(checkpoint)  # raises on any missing or unexpected key
    assert set(model.state_dict()) == set(stored)
    expected = ["model.embed_tokens.weight", "lm_head.weight", "model.image_newline", "model.mm_projector.0.weight",
                "model.mm_projector.2.weight", "model.composer_projector.linear_q.weight",
                "model.composer_projector.linear_iq.weight", "model.composer_projector.linear_k.weight",
                "model.composer_projector.linear_ik.weight", "model.composer_projector.tau",
                "model.frame_selector.model.visual_projection.weight", "model.frame_selector.model.logit_scale",
                "model.vision_tower.vision_tower.vision_model.post_layernorm.weight"]
    assert all(k in stored for k in expected)
    prefix = "model.vision_tower.vision_tower.vision_model.encoder.layers."
    layers = {k.split(".")[6] for k in stored if k.startswith(prefix)}
    assert layers == {"0", "1"}  # 3-layer tower stored without its last layer (penultimate features)
    assert json.loads((checkpoint / "config.json").read_text())["model_type"] == "llava_qwen"
    for key in expected:
        assert torch.equal(model.state_dict()[key], stored[key])


def test_renamed_or_missing_keys_are_named(checkpoint, tmp_path):
    stored = load_file(str(checkpoint / "model.safetensors"))
    stored["model.composer_projector.temperature"] = stored.pop("model.composer_projector.tau")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((checkpoint / "config.json").read_text())
    save_file(stored, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointLayoutError, match=r"1 missing .*composer_projector\.tau.*1 unexpected"):
        load_official(bad)


def test_single_token_variant_round_trips(checkpoint, tmp_path):
    cfg = {**json.loads((checkpoint / "config.json").read_text()), "composer_type": "single_token"}
    model = build_model(cfg)
    assert "model.composer_projector.0.weight" in model.state_dict()
    save_official(model, cfg, tmp_path / "st")
    loaded, _ = load_official(tmp_path / "st")
    assert torch.equal(loaded.model.composer_projector[2].weight, model.model.composer_projector[2].weight)


def test_7b_layout_shapes_without_weights():
    cfg = {"model_type": "llava_qwen", "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944,
           "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "mm_hidden_size": 1152,
           "mm_projector_type": "mlp2x_gelu", "composer_type": "sig_pooling", "composer_proj_dim": 512}
    with torch.device("meta"):
        model = build_model(cfg)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["model.mm_projector.0.weight"] == (3584, 1152)
    assert shapes["model.composer_projector.linear_q.weight"] == (3584, 512)
    assert shapes["model.frame_selector.model.visual_projection.weight"] == (512, 768)  # CLIP ViT-B/32
    assert shapes["model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight"] == (1152, 3, 14, 14)
    tower_layers = {k.split(".")[6] for k in shapes if ".vision_model.encoder.layers." in k}
    assert len(tower_layers) == 26  # so400m's 27 layers minus the deleted last one
    grid = 384 // 14
    assert math.ceil(grid / 2) ** 2 == 196 and vilamp_visual_tokens(600, 32, 196) == 6841


def test_tiny_backbone_tokens_and_pooling(checkpoint):
    assert BACKBONES.get("vilamp-tiny") is ViLAMPTinyBackbone
    backbone = ViLAMPTinyBackbone.load()
    assert backbone.tokens_per_frame == ViLAMPTinyBackbone.tokens_per_frame_for() == 16 and backbone.grid == 8
    pixels = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    frames = Frames((0, 1, 2), (0.0, 1.0, 2.0), pixels)
    patches = backbone.encode_patches(frames)
    assert patches.shape == (3, 64, backbone.hidden_size)
    encoded = backbone.encode_frames(frames)
    pooled = encoded.tokens
    assert pooled.shape == (3, 16, backbone.hidden_size)
    assert (encoded.frames_per_row, encoded.grid, encoded.timestamps_s) == (1, None, (0.0, 1.0, 2.0))
    grid = patches.view(3, 8, 8, -1).permute(0, 3, 1, 2)
    manual = torch.nn.functional.interpolate(grid, size=[4, 4], mode="bilinear").permute(0, 2, 3, 1).reshape(3, 16, -1)
    assert torch.allclose(pooled, manual)
    scorer = backbone.dfm_scorer("What color is the car?")
    assert scorer.scores(patches[:2], patches[1:]).shape == (2, 64)


def test_generate_appends_the_newline_and_refuses_in_llm_pruning():
    backbone = ViLAMPTinyBackbone.load()
    pixels = np.random.default_rng(1).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    visual = VisualSequence.whole(backbone.encode_frames(Frames((0, 1), (0.0, 1.0), pixels)))
    prompt = Prompt(system="", user="What color is the car?\nA. red\nB. blue")
    out = backbone.generate(visual, prompt, GenerationConfig(max_new_tokens=3))
    assert out.visual_tokens == 2 * 16 + 1 and 1 <= out.generated_tokens <= 3
    embeds, n_visual, n_text = backbone.prompt_embeds(visual, prompt)
    assert embeds.shape == (1, n_visual + n_text, backbone.hidden_size) and n_visual == out.visual_tokens
    with pytest.raises(HookUnavailable, match="'llm_prune'"):
        backbone.generate(VisualSequence.whole(visual.source, LlmPrune.fastv(1, 0.5)), prompt, GenerationConfig())


def test_instance_hooks_follow_the_composer_type(checkpoint, tmp_path):
    assert {"dfm_scorer", "non_keyframe_tokens", "patch_features", "image_text_encoder"} <= ViLAMPBackbone.hooks
    sig = ViLAMPTinyBackbone.load()
    assert sig.composer_type == "sig_pooling" and sig.hooks == ViLAMPBackbone.hooks - {"non_keyframe_tokens"}
    cfg = {**json.loads((checkpoint / "config.json").read_text()), "composer_type": "single_token"}
    single = ViLAMPBackbone(build_model(cfg), cfg, AutoTokenizer.from_pretrained(checkpoint),
                            AutoTokenizer.from_pretrained(checkpoint / "clip"),
                            CLIPImageProcessor.from_pretrained(checkpoint / "clip"))
    assert single.hooks == ViLAMPBackbone.hooks - {"dfm_scorer"}
    pixels = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    assert single.non_keyframe_tokens(Frames((0, 1, 2), (0.0, 1.0, 2.0), pixels)).shape == (3, single.hidden_size)


def test_vilamp_without_checkpoint_exits_2_with_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_VILAMP", str(tmp_path / "ViLAMP-llava-qwen_sig"))
    ensure_data(get_task("needle"), resolve_root(get_task("needle")))  # generation progress is not the error
    capsys.readouterr()
    assert main(["eval", "--task", "needle", "--model", "vilamp", "--limit", "1", "--no-wandb"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "ViLAMP-llava-qwen_sig" in err and "orange-sk/ViLAMP-llava-qwen_sig" in err
