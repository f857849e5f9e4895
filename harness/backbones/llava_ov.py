"""LLaVA-OneVision and LLaVA-Video (both `LlavaOnevisionForConditionalGeneration`) behind the Backbone protocol.

transformers serves LLaVA-Video-7B-Qwen2 (`llava-hf/LLaVA-Video-7B-Qwen2-hf`) with the LLaVA-OneVision class
and its own weights and config, so one wrapper covers both. Known deviation inherited from that port: video
frames are pooled 2× bilinearly to 14×14 = 196 tokens with one newline after the video (LLaVA-OV's scheme),
where the original LLaVA-Video code average-pools to 13×13 and adds a newline per row.

The wrapper is the tiny backbone's class (`TinyBackbone`, which holds every hook) over a model loaded by hub id
or directory with dtype and attention options; the `*-tiny` variants load seeded tiny checkpoints of the same
class through the same `from_pretrained` path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoProcessor, LlavaOnevisionForConditionalGeneration

from harness.backbones import tiny
from harness.backbones.hf_common import check_checkpoint, load_pretrained
from harness.core.paths import cache_dir
from harness.core.records import Frames

LLAVA_OV_HUB_ID = "llava-hf/llava-onevision-qwen2-7b-ov-hf"
LLAVA_VIDEO_HUB_ID = "llava-hf/LLaVA-Video-7B-Qwen2-hf"


class LlavaOvBackbone(tiny.TinyBackbone):
    hooks = tiny.TinyBackbone.hooks | {"vision_features"}

    def __init__(self, model: LlavaOnevisionForConditionalGeneration, processor: Any, name: str) -> None:
        super().__init__(model, processor)
        self.name = name

    def vision_features(self, frames: Frames) -> tuple[torch.Tensor, torch.Tensor]:
        """(vision-encoder patch features at the feature layer [T, P, Cv], projected + pooled tokens [T, M, C])."""
        if len(frames) == 0:
            raise ValueError("vision_features needs at least one frame")
        layer = self.model.config.vision_feature_layer
        if not isinstance(layer, int):
            raise ValueError("vision_features: multi-layer vision features are not supported")
        with torch.inference_mode():
            out = self.model.model.vision_tower(pixel_values=self._video_pixels(frames)[0], output_hidden_states=True)
            pre = out.hidden_states[layer]
        return pre, self.encode_frames(frames)


_LLAVA_VIDEO_SEED_OFFSET = 1_000  # tiny_seed s of llava-video draws its weights with seed s + this


def _tiny_llava_video_checkpoint(seed: int) -> Path:
    """The tiny LLaVA-OV architecture with its own seed: distinct weights of the same class, as LLaVA-Video is."""
    own = seed + _LLAVA_VIDEO_SEED_OFFSET
    return tiny.ensure_checkpoint(cache_dir() / "models" / f"tiny-llava-video-v{tiny.TINY_FORMAT}-seed{own}", own)


def _load(name: str, source: str, dtype: str, device: str, attn_implementation: str,
          num_threads: int | None) -> LlavaOvBackbone:
    model, processor = load_pretrained(
        LlavaOnevisionForConditionalGeneration, AutoProcessor, source,
        dtype=dtype, device=device, attn_implementation=attn_implementation, num_threads=num_threads,
    )
    return LlavaOvBackbone(model, processor, name)


def load_llava_ov(
    *, checkpoint: str | None = None, tiny_seed: int | None = None, dtype: str = "float32", device: str = "cpu",
    attn_implementation: str = "sdpa", num_threads: int | None = None,
) -> LlavaOvBackbone:
    """Registry factory: `checkpoint` (hub id or directory), or the tiny random checkpoint for `tiny_seed`."""
    if (checkpoint is None) == (tiny_seed is None):
        raise ValueError("llava-ov needs exactly one of checkpoint=<hub id or dir> or tiny_seed=<int>")
    if tiny_seed is not None:
        source = str(tiny.ensure_checkpoint(tiny.default_checkpoint(tiny_seed), tiny_seed))
        return _load("llava-ov-tiny", source, dtype, device, attn_implementation, num_threads)
    return _load("llava-ov", str(checkpoint), dtype, device, attn_implementation, num_threads)


def load_llava_video(
    *, checkpoint: str | None = None, tiny_seed: int | None = None, dtype: str = "float32", device: str = "cpu",
    attn_implementation: str = "sdpa", num_threads: int | None = None,
) -> LlavaOvBackbone:
    if (checkpoint is None) == (tiny_seed is None):
        raise ValueError("llava-video needs exactly one of checkpoint=<hub id or dir> or tiny_seed=<int>")
    if tiny_seed is not None:
        source = str(_tiny_llava_video_checkpoint(tiny_seed))
        return _load("llava-video-tiny", source, dtype, device, attn_implementation, num_threads)
    return _load("llava-video", str(checkpoint), dtype, device, attn_implementation, num_threads)


# harness.backbones.check_backbone runs these in the driver before any worker starts
load_llava_ov.preflight = check_checkpoint  # type: ignore[attr-defined]
load_llava_video.preflight = check_checkpoint  # type: ignore[attr-defined]
