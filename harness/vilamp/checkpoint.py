"""The ViLAMP checkpoint in the official parameter layout (github steven-ccq/ViLAMP, `LlavaQwenForCausalLM`): built,
saved and loaded key for key, a seeded tiny one, where a checkpoint lives and what its config.json implies.

Architecture (notes/vilamp.md §3): Qwen2 LLM; SigLIP-so400m-patch14-384 vision tower with its last layer
deleted (penultimate features, no head); `mlp2x_gelu` projector; keyframe grids pooled bilinearly 27×27 → 14×14
(196 tokens); a CLIP ViT-B/32 frame selector for DKS; non-keyframes merged by the learned DFM maps
(`composer_type="sig_pooling"`: linear_q/iq/k/ik and temperature `tau`) or, in the `single_token` variant,
mapped from their CLIP image embedding by a 2-layer GELU MLP. One learned `image_newline` ends the video.

Built from transformers classes (Qwen2ForCausalLM, SiglipVisionModel, CLIPModel) with the extra modules attached
where the official code keeps them, so `state_dict()` keys are exactly the checkpoint's:

    model.embed_tokens / model.layers.* / model.norm / lm_head            Qwen2
    model.vision_tower.vision_tower.vision_model.*                         SigLIP (N−1 layers, post_layernorm kept)
    model.mm_projector.{0,2}.*                                             projector
    model.frame_selector.model.*                                           CLIPModel (DKS encoder)
    model.composer_projector.{linear_q,linear_iq,linear_k,linear_ik}.*, .tau   (sig_pooling)
    model.composer_projector.{0,2}.*                                       (single_token)
    model.image_newline

A checkpoint loads only if every key matches: missing or unexpected keys are an error naming them.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from harness.core.config import ConfigError
from harness.core.paths import cache_dir
from harness.hf.checkpoints import seeded, tiny_checkpoint
from harness.hf.text import IM_END, tiny_tokenizer
from harness.methods.encoders import build_tiny_clip, clip_b32_dir

if TYPE_CHECKING:  # transformers loads on first use: the spec check needs only the paths and shapes
    import transformers

HF_REPO = "orange-sk/ViLAMP-llava-qwen_sig"  # the README's install link since 2025-09-10
# google/siglip-so400m-patch14-384 (config.json of that repo); ViLAMP's `mm_vision_tower`.
SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
              image_size=384, patch_size=14, layer_norm_eps=1e-6)
QWEN2_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings")


class CheckpointLayoutError(ConfigError):
    """A checkpoint whose parameter names do not match the official ViLAMP layout."""


class _Holder(nn.Module):
    """A bare container so submodule paths match the official names (e.g. `vision_tower.vision_tower`)."""

    def __init__(self, **modules: nn.Module) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)


class SigPooling(nn.Module):
    """The official DFM maps: score = (cos(W_q q, W_iq p) − cos(W_k r, W_ik p)) / tau (λ ≡ 1)."""

    def __init__(self, hidden: int, query_dim: int) -> None:
        super().__init__()
        self.linear_iq = nn.Linear(hidden, hidden)
        self.linear_ik = nn.Linear(hidden, hidden)
        self.linear_q = nn.Linear(query_dim, hidden)
        self.linear_k = nn.Linear(hidden, hidden)
        self.tau = nn.Parameter(torch.tensor(0.01))  # initial value in the official code


def _vision_config(cfg: dict[str, Any]) -> transformers.SiglipVisionConfig:
    """The SigLIP tower as stored: the official tower deletes its last encoder layer and its head."""
    from transformers import SiglipVisionConfig
    layout = {**SO400M, **cfg.get("harness_vision_config", {})}
    layout["num_hidden_layers"] -= 1
    return SiglipVisionConfig(**layout, vision_use_head=False)


def _clip_config(cfg: dict[str, Any]) -> transformers.CLIPConfig:
    # Absent: transformers' CLIPConfig defaults, which are openai/clip-vit-base-patch32 (ViLAMP's selector).
    from transformers import CLIPConfig
    return CLIPConfig.from_dict(cfg["harness_clip_config"]) if "harness_clip_config" in cfg else CLIPConfig()


def build_model(cfg: dict[str, Any]) -> transformers.Qwen2ForCausalLM:
    """A randomly initialised ViLAMP in the official module layout, from an official-style config.json dict."""
    from transformers import CLIPModel, Qwen2Config, Qwen2ForCausalLM, SiglipVisionModel
    composer = cfg.get("composer_type", "single_token")  # LlavaQwenConfig class default
    if composer not in ("sig_pooling", "single_token"):
        raise ConfigError(f"config.json composer_type={composer!r}: supported are 'sig_pooling' and 'single_token'")
    if cfg.get("mm_projector_type", "mlp2x_gelu") != "mlp2x_gelu":
        raise ConfigError(f"config.json mm_projector_type={cfg['mm_projector_type']!r}: only 'mlp2x_gelu' is supported")
    text = Qwen2Config(
        **{k: cfg[k] for k in QWEN2_KEYS if k in cfg},
        rope_parameters={"rope_type": "default", "rope_theta": float(cfg.get("rope_theta", 1_000_000.0))},
        bos_token_id=cfg.get("bos_token_id"), eos_token_id=cfg.get("eos_token_id"),
    )
    lm = Qwen2ForCausalLM(text)
    hidden, mm_hidden = text.hidden_size, int(cfg.get("mm_hidden_size", SO400M["hidden_size"]))
    clip = CLIPModel(_clip_config(cfg))
    inner = lm.model
    # transformers 5's SiglipVisionModel has no `vision_model` level; the holder restores the official path.
    inner.vision_tower = _Holder(vision_tower=_Holder(vision_model=SiglipVisionModel(_vision_config(cfg))))
    inner.mm_projector = nn.Sequential(nn.Linear(mm_hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
    inner.frame_selector = _Holder(model=clip)
    query_dim = int(cfg.get("composer_proj_dim", clip.config.projection_dim))
    if composer == "sig_pooling":
        inner.composer_projector = SigPooling(hidden, query_dim)
        for linear in (inner.composer_projector.linear_iq, inner.composer_projector.linear_ik,
                       inner.composer_projector.linear_q, inner.composer_projector.linear_k):
            nn.init.normal_(linear.weight, std=0.02)  # the official init
    else:
        inner.composer_projector = nn.Sequential(nn.Linear(query_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
    inner.image_newline = nn.Parameter(torch.randn(hidden) / math.sqrt(hidden))  # official init scale
    return lm


def save_official(lm: transformers.Qwen2ForCausalLM, cfg: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(cfg, indent=2))
    state = {k: v.contiguous() for k, v in lm.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})


def read_state(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) safetensors checkpoint."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (directory / "model.safetensors").is_file():
        shards = ["model.safetensors"]
    else:
        raise CheckpointLayoutError(f"{directory}: no model.safetensors or model.safetensors.index.json")
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(load_file(str(directory / shard)))
    return state


def load_official(directory: Path,
                  dtype: torch.dtype = torch.float32) -> tuple[transformers.Qwen2ForCausalLM, dict[str, Any]]:
    """Build from `directory`/config.json and load every tensor; any missing or unexpected key is an error."""
    from transformers.initialization import no_init_weights
    cfg = json.loads((directory / "config.json").read_text())
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build directly in the load dtype: a 7B in fp32 would not fit
    try:
        with no_init_weights():  # every parameter is overwritten below; random init of a 7B costs minutes
            lm = build_model(cfg)
    finally:
        torch.set_default_dtype(previous)
    missing, unexpected = lm.load_state_dict(read_state(directory), strict=False)
    if missing or unexpected:
        raise CheckpointLayoutError(
            f"{directory}: not the ViLAMP layout: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    return lm.eval(), cfg


# ---------------------------------------------------------------- tiny checkpoint

TINY_VILAMP_FORMAT = 1
TINY_VISION = {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4,
               "image_size": 64, "patch_size": 8}  # the tiny SigLIP tower (3 layers, stored without its last)


def _tiny_config(tokenizer: Any, clip: transformers.CLIPModel) -> dict[str, Any]:
    """An official-style config.json for a tiny ViLAMP; `harness_*` keys carry the tiny tower shapes."""
    return {
        "architectures": ["LlavaQwenForCausalLM"], "model_type": "llava_qwen",
        "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0, "tie_word_embeddings": False,
        "eos_token_id": tokenizer.convert_tokens_to_ids(IM_END),
        "mm_vision_tower": "tiny-siglip", "mm_hidden_size": 48, "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2, "mm_patch_merge_type": "spatial_unpad", "mm_spatial_pool_mode": "bilinear",
        "composer_type": "sig_pooling", "composer_proj_dim": clip.config.projection_dim,
        "frame_selector_type": "SeqFrameSelector", "max_frame_num": 32, "f2f_thrd": 0.85, "f2t_thrd": 0.2,
        "clip_model_path": "clip", "tokenizer_model_max_length": 32768,
        "harness_vision_config": dict(TINY_VISION),
        "harness_clip_config": clip.config.to_dict(),
    }


def tiny_vilamp_checkpoint(seed: int = 0) -> Path:
    """A seeded tiny ViLAMP in the official layout (config.json + model.safetensors + tokenizer), with the
    tiny-clip tokenizer and image processor under clip/ (the official `clip_model_path`), cached."""

    def write(staging: Path) -> None:
        tokenizer = tiny_tokenizer()
        clip, clip_processor, clip_tokenizer = build_tiny_clip(seed)
        cfg = _tiny_config(tokenizer, clip)
        with seeded(seed):
            lm = build_model(cfg)
        lm.model.frame_selector.model.load_state_dict(clip.state_dict())
        save_official(lm, cfg, staging)
        tokenizer.save_pretrained(staging)
        clip_tokenizer.save_pretrained(staging / "clip")
        clip_processor.save_pretrained(staging / "clip")

    return tiny_checkpoint("vilamp", TINY_VILAMP_FORMAT, seed, write)


# ---------------------------------------------------------------- where it is, what it holds

def official_dir(checkpoint: str | None = None) -> Path:
    return Path(checkpoint or os.environ.get("HARNESS_VILAMP") or cache_dir() / "models" / "ViLAMP-llava-qwen_sig"
                ).expanduser()


def find_clip_dir(directory: Path, cfg: dict[str, Any], clip: str | None) -> Path:
    """The CLIP tokenizer/processor: `clip`, else `clip_model_path` inside the checkpoint, else clip-vit-b32's."""
    if clip:
        return Path(clip)
    inside = directory / str(cfg.get("clip_model_path", ""))
    return inside if cfg.get("clip_model_path") and inside.is_dir() else clip_b32_dir()


def keyframe_tokens(cfg: dict[str, Any]) -> int:
    """Keyframe tokens: the SigLIP g×g grid, pooled bilinearly to ⌈g/2⌉×⌈g/2⌉ by the official get_2dPool unless
    mm_spatial_pool_mode is 'none'; 196 for the 7B (so400m-patch14-384: 27 → 14)."""
    vision = {**SO400M, **cfg.get("harness_vision_config", {})}
    grid = vision["image_size"] // vision["patch_size"]
    side = grid if cfg.get("mm_spatial_pool_mode", "bilinear") == "none" else math.ceil(grid / 2)
    return side * side
