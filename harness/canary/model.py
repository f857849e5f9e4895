"""The canary LLaVA-OneVision: the real `LlavaOnevisionForConditionalGeneration` from a small config (wider than
`tiny`), with the tiny tokenizer plus each needle label as one token and a haystack token for "no needle"."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import (
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
    SiglipVisionConfig,
)

from harness.backbones.llava_ov import grid_pinpoints, init_model, tiny_processor
from harness.data.needle.questions import CATEGORIES
from harness.hf.text import IMAGE, VIDEO, tiny_tokenizer

LABELS: tuple[str, ...] = tuple(label for pool in CATEGORIES.values() for label in pool)  # 71 needle labels
HAYSTACK = "<|haystack|>"  # the class of a frame without a needle (stage 1's 72nd label)


@dataclass(frozen=True)
class Widths:
    # the needle task's own 128 px frames, unscaled (64 px, the tiny size, leaves its words unreadable: 32% of
    # word needles recognised in recipe 1), in 16 px patches: the tiny 8×8 grid, so 16 tokens per frame still
    image_size: int = 128
    patch_size: int = 16
    vision_hidden: int = 128  # SigLIP width (tiny: 64)
    vision_layers: int = 4  # 2 layers read 33% of word needles after 1,500 steps, 4 layers 48%
    vision_heads: int = 4
    hidden: int = 128  # Qwen2 width = projector output (tiny: 64)
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2


def canary_tokenizer() -> PreTrainedTokenizerFast:
    """`tiny_tokenizer()` plus one token per needle label (so matching a label is one-token identity) and HAYSTACK."""
    tokenizer = tiny_tokenizer()
    tokenizer.add_tokens(list(LABELS))
    tokenizer.add_tokens([HAYSTACK], special_tokens=True)
    return tokenizer


def label_ids(tokenizer: PreTrainedTokenizerFast) -> list[int]:
    """Token ids of LABELS then HAYSTACK: the class order of stage 1."""
    ids = [tokenizer.convert_tokens_to_ids(t) for t in (*LABELS, HAYSTACK)]
    for label, i in zip(LABELS, ids):
        if tokenizer(" " + label, add_special_tokens=False)["input_ids"][-1] != i:
            raise ValueError(f"label {label!r} is not one token")
    return ids


def build_canary_model(seed: int, widths: Widths = Widths()) -> tuple[LlavaOnevisionForConditionalGeneration,
                                                                      LlavaOnevisionProcessor]:
    """The untrained canary and its processor (weights drawn from `seed`)."""
    tokenizer = canary_tokenizer()
    vision = SiglipVisionConfig(
        image_size=widths.image_size, patch_size=widths.patch_size, hidden_size=widths.vision_hidden,
        intermediate_size=2 * widths.vision_hidden, num_hidden_layers=widths.vision_layers,
        num_attention_heads=widths.vision_heads, vision_use_head=False,
    )
    text = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=widths.hidden, intermediate_size=2 * widths.hidden,
        num_hidden_layers=widths.layers, num_attention_heads=widths.heads, num_key_value_heads=widths.kv_heads,
        max_position_embeddings=32768, rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaOnevisionConfig(
        vision_config=vision, text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE), video_token_index=tokenizer.convert_tokens_to_ids(VIDEO),
        vision_feature_select_strategy="full", vision_feature_layer=-1, image_grid_pinpoints=grid_pinpoints(widths.image_size),
    )
    return init_model(config, tokenizer, seed), tiny_processor(tokenizer, widths.image_size, widths.patch_size)


def frame_tokens(model: LlavaOnevisionForConditionalGeneration, pixels: torch.Tensor) -> torch.Tensor:
    """Per-frame visual tokens [N, M, C] of processed frames [N, 3, S, S], through the model's own video path
    (SigLIP → projector → 2× pooling), as `LlavaOvBackbone.encode_frames` computes them."""
    features = model.get_video_features(pixels[None], return_dict=True).pooler_output[0, :-1]
    return features.reshape(len(pixels), -1, features.shape[-1])
