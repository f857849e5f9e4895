"""The full-size architectures a cost is computed for: the few numbers of each published checkpoint's config.json
that decide FLOPs and memory, shipped here (no weights, no download), with the checkpoint they come from.

`architecture(spec)` picks the one a spec's backbone loads (by its `checkpoint` argument). The tiny checkpoints
are described by the same records, read from their own config.json, which is what lets the tiny specs calibrate
the cost model against measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.config import ConfigError
from harness.model.specs import ModelSpec


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
    "vilamp-7b", "orange-sk/ViLAMP-llava-qwen_sig", SO400M, (1152, 3584, 3584), QWEN2_7B, tokens_per_frame=196,
    encoder=CLIP_B32)

FULL_SIZE = {a.checkpoint: a for a in (LLAVA_OV_7B, LLAVA_VIDEO_7B, QWEN25VL_7B, VILAMP_7B)}
ENCODERS = {"clip-vit-b32": CLIP_B32}  # selector encoders by their registry name


def architecture(spec: ModelSpec) -> Architecture:
    """The full-size architecture `spec`'s backbone loads; a ConfigError naming the spec when none is shipped."""
    args: dict[str, Any] = spec.backbone.args
    checkpoint = args.get("checkpoint") or ("orange-sk/ViLAMP-llava-qwen_sig" if spec.backbone.name == "vilamp"
                                            else None)
    if checkpoint not in FULL_SIZE:
        known = ", ".join(sorted(FULL_SIZE))
        raise ConfigError(f"model {spec.name!r}: no full-size architecture for backbone {spec.backbone.name!r} "
                          f"(checkpoint {checkpoint!r}); the cost model knows {known}")
    return FULL_SIZE[checkpoint]
