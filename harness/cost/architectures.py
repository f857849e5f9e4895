"""The full-size architectures a cost is computed for: the few numbers of each published checkpoint's config.json
that decide FLOPs and memory, shipped here (no weights, no download), with the checkpoint they come from.

`architecture(spec)` picks the one a spec's backbone loads (by its `checkpoint` argument). The tiny checkpoints
are described by the same records, read from their own config.json, which is what lets the tiny specs calibrate
the cost model against measurements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backbones import BACKBONES
from harness.core.config import ConfigError
from harness.methods.encoders import CANARY_CLIP, build_tiny_clip
from harness.model.specs import ModelSpec
from harness.vilamp.checkpoint import HF_REPO as VILAMP_REPO
from harness.vilamp.checkpoint import SO400M as VILAMP_SIGLIP


@dataclass(frozen=True)
class Tower:
    """A ViT: `layers` blocks of attention over its patches plus an MLP (`gated`: SwiGLU, three matrices)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    patch: int
    image_size: int | None  # square input side; None: native resolution (Qwen2.5-VL)
    gated: bool = False
    cls_token: bool = False  # CLIP prepends a class token
    temporal_patch: int = 1  # frames per patch (Qwen2.5-VL: 2)
    merge: int = 1  # patches per LLM token along each side (Qwen2.5-VL's merger: 2)
    window: int | None = None  # window attention side in pixels (Qwen2.5-VL: 112) outside `full_layers`
    full_layers: tuple[int, ...] = ()


@dataclass(frozen=True)
class Llm:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    context_window: int  # positions the model was trained for

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


@dataclass(frozen=True)
class Architecture:
    name: str
    checkpoint: str  # the hub id whose config.json these numbers are
    vision: Tower
    projector: tuple[int, ...]  # the projector's layer widths, input first (a 2-layer MLP: in, hidden, out)
    llm: Llm
    tokens_per_frame: int | None  # after pooling; None: follows the frame size (Qwen2.5-VL)
    encoder: Tower | None = None  # a selector's own image encoder built into the model (ViLAMP's CLIP)


# google/siglip-so400m-patch14-384 as LLaVA-OneVision configures it (vision_config of
# llava-hf/llava-onevision-qwen2-7b-ov-hf: 26 layers, the tower's last one dropped; 27×27 patches).
SO400M = Tower(hidden=1152, intermediate=4304, layers=26, heads=16, patch=14, image_size=384)
# Qwen/Qwen2-7B-Instruct config.json (the LLM of LLaVA-OV-7B, LLaVA-Video-7B-Qwen2 and ViLAMP-7B).
QWEN2_7B = Llm(hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, vocab=152064, context_window=32768)
# openai/clip-vit-base-patch32 config.json vision_config: 7×7 patches + the class token at 224 px.
CLIP_B32 = Tower(hidden=768, intermediate=3072, layers=12, heads=12, patch=32, image_size=224, cls_token=True)

LLAVA_OV_7B = Architecture(
    "llava-ov-7b", "llava-hf/llava-onevision-qwen2-7b-ov-hf", SO400M, (1152, 3584, 3584), QWEN2_7B,
    tokens_per_frame=196)  # 27×27 pooled 2× bilinearly to 14×14 (arXiv 2408.03326 §4)
LLAVA_VIDEO_7B = Architecture(
    "llava-video-7b", "llava-hf/LLaVA-Video-7B-Qwen2-hf", SO400M, (1152, 3584, 3584), QWEN2_7B, tokens_per_frame=196)
# Qwen/Qwen2.5-VL-7B-Instruct config.json: vision depth 32, hidden 1280, SwiGLU 3420, window 112 with full
# attention in blocks 7/15/23/31, 2×2 merger (1280·4 → 5120 → 3584); the LLM as Qwen2-7B. Context: the model
# card's 32,768 tokens (config.json's max_position_embeddings 128000 assumes YaRN scaling).
QWEN25VL_7B = Architecture(
    "qwen25vl-7b", "Qwen/Qwen2.5-VL-7B-Instruct",
    Tower(hidden=1280, intermediate=3420, layers=32, heads=16, patch=14, image_size=None, gated=True,
          temporal_patch=2, merge=2, window=112, full_layers=(7, 15, 23, 31)),
    (5120, 5120, 3584), QWEN2_7B, tokens_per_frame=None)
# orange-sk/ViLAMP-llava-qwen_sig (notes/vilamp.md §3): SigLIP so400m without its last layer, mlp2x_gelu, Qwen2-7B,
# a CLIP ViT-B/32 for DKS inside the model; 196 tokens per keyframe, 1 per merged frame.
VILAMP_7B = Architecture(
    "vilamp-7b", VILAMP_REPO, SO400M, (1152, 3584, 3584), QWEN2_7B, tokens_per_frame=196,
    encoder=CLIP_B32)

FULL_SIZE = {a.checkpoint: a for a in (LLAVA_OV_7B, LLAVA_VIDEO_7B, QWEN25VL_7B, VILAMP_7B)}
ENCODERS = {"clip-vit-b32": CLIP_B32}  # selector encoders by their registry name


def architecture(spec: ModelSpec) -> Architecture:
    """The full-size architecture `spec`'s backbone loads; a ConfigError naming the spec when none is shipped."""
    args: dict[str, Any] = spec.backbone.args
    checkpoint = args.get("checkpoint") or (VILAMP_REPO if spec.backbone.name == "vilamp" else None)
    if checkpoint not in FULL_SIZE:
        known = ", ".join(sorted(FULL_SIZE))
        raise ConfigError(f"model {spec.name!r}: no full-size architecture for backbone {spec.backbone.name!r} "
                          f"(checkpoint {checkpoint!r}); the cost model knows {known}")
    return FULL_SIZE[checkpoint]


# ---------------------------------------------------------------- a checkpoint's own config.json (the tiny ones)


def read_architecture(directory: Path, name: str, tokens_per_frame: int | None) -> Architecture:
    """The record of the checkpoint in `directory`, from its config.json alone (no weights): LLaVA-OV / LLaVA-Video,
    Qwen2.5-VL, or ViLAMP's official layout (whose tiny tower shapes sit under `harness_*` keys); `tokens_per_frame`
    as its backbone class counts them (`tokens_per_frame_for`)."""
    cfg = json.loads((directory / "config.json").read_text())
    kind = cfg.get("model_type")
    if kind == "llava_onevision":
        v, t = cfg["vision_config"], cfg["text_config"]
        tower = _siglip(v, v["num_hidden_layers"])
        return Architecture(name, str(directory), tower, (v["hidden_size"], t["hidden_size"], t["hidden_size"]),
                            _llm(t), tokens_per_frame)
    if kind == "qwen2_5_vl":
        v, t = cfg["vision_config"], cfg["text_config"]
        merge = v["spatial_merge_size"]
        tower = Tower(hidden=v["hidden_size"], intermediate=v["intermediate_size"], layers=v["depth"],
                      heads=v["num_heads"], patch=v["patch_size"], image_size=None, gated=True,
                      temporal_patch=v["temporal_patch_size"], merge=merge, window=v["window_size"],
                      full_layers=tuple(v["fullatt_block_indexes"]))
        wide = v["hidden_size"] * merge * merge
        return Architecture(name, str(directory), tower, (wide, wide, v["out_hidden_size"]), _llm(t), None)
    if kind == "llava_qwen":  # ViLAMP: its stored SigLIP lacks the last layer (vilamp.checkpoint._vision_config)
        v = {**VILAMP_SIGLIP, **cfg.get("harness_vision_config", {})}
        clip = cfg.get("harness_clip_config", {}).get("vision_config")
        return Architecture(name, str(directory), _siglip(v, v["num_hidden_layers"] - 1),
                            (int(cfg.get("mm_hidden_size", v["hidden_size"])), cfg["hidden_size"], cfg["hidden_size"]),
                            _llm({**cfg, "max_position_embeddings": cfg.get("tokenizer_model_max_length", 32768)}),
                            tokens_per_frame, encoder=CLIP_B32 if clip is None else _clip(clip))
    raise ConfigError(f"{directory}/config.json: model_type {kind!r} is not one the cost model reads "
                      "(llava_onevision, qwen2_5_vl, llava_qwen)")


def read_clip(directory: Path) -> Tower:
    """A CLIP checkpoint's image tower (a selector's encoder, e.g. tiny-clip), from its config.json."""
    return _clip(json.loads((directory / "config.json").read_text())["vision_config"])


def _siglip(v: dict[str, Any], layers: int) -> Tower:
    return Tower(hidden=v["hidden_size"], intermediate=v["intermediate_size"], layers=layers,
                 heads=v["num_attention_heads"], patch=v["patch_size"], image_size=v["image_size"])


def _clip(v: dict[str, Any]) -> Tower:
    return Tower(hidden=v["hidden_size"], intermediate=v["intermediate_size"], layers=v["num_hidden_layers"],
                 heads=v["num_attention_heads"], patch=v["patch_size"], image_size=v["image_size"], cls_token=True)


def _llm(t: dict[str, Any]) -> Llm:
    return Llm(hidden=t["hidden_size"], intermediate=t["intermediate_size"], layers=t["num_hidden_layers"],
               heads=t["num_attention_heads"], kv_heads=t["num_key_value_heads"], vocab=t["vocab_size"],
               context_window=t["max_position_embeddings"])


def encoder_tower(name: str) -> Tower:
    """The image tower of a selector's encoder by its ENCODERS name: CLIP ViT-B/32's shipped numbers, the tiny CLIP's
    own config (built in memory: it is tiny), the canary CLIP's shipped config.json."""
    if name in ENCODERS:
        return ENCODERS[name]
    if name == "tiny-clip":
        return _clip(build_tiny_clip()[0].config.vision_config.to_dict())
    if name == "canary-clip":
        return read_clip(CANARY_CLIP)
    raise ConfigError(f"encoder {name!r}: the cost model knows {', '.join([*ENCODERS, 'tiny-clip', 'canary-clip'])}")


def architecture_of(spec: ModelSpec) -> Architecture:
    """`architecture(spec)` for a published checkpoint; otherwise the config.json of the checkpoint the spec's backbone
    loads from disk (a tiny one is built on first use): what lets the tiny specs calibrate the cost model."""
    try:
        return architecture(spec)
    except ConfigError:
        directory = local_checkpoint(spec)
        if directory is None:
            raise
    backbone = BACKBONES.get(spec.backbone.name)
    return read_architecture(directory, spec.backbone.name, backbone.tokens_per_frame_for(**spec.backbone.args))


def local_checkpoint(spec: ModelSpec) -> Path | None:
    """The directory the spec's backbone loads from, when it is one on disk (a tiny checkpoint or a local path)."""
    return BACKBONES.get(spec.backbone.name).checkpoint_dir(**spec.backbone.args)
