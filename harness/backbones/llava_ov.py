"""LLaVA-OneVision and LLaVA-Video (both `LlavaOnevisionForConditionalGeneration`: SigLIP + GELU projector + Qwen2)
behind the Backbone protocol, and `tiny`, the same class on a tiny random checkpoint.

transformers serves LLaVA-Video-7B-Qwen2 (`llava-hf/LLaVA-Video-7B-Qwen2-hf`) with the LLaVA-OneVision class
and its own weights and config, so one class covers both. Known deviation inherited from that port: video
frames are pooled 2× bilinearly to 14×14 = 196 tokens with one newline after the video (LLaVA-OV's scheme),
where the original LLaVA-Video code average-pools to 13×13 and adds a newline per row.

The tiny checkpoints (`tiny_seed=`; `tiny` is LLaVA-OV with tiny_seed=0) are built offline from a fixed seed,
saved with `save_pretrained` and loaded back with `from_pretrained`, so offline runs exercise the same
transformers code path, timings and memory accounting as the full-size models. Their answers are near chance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from harness.backbones.base import Placement, bind_arguments
from harness.backbones.decoding import PromptInputs
from harness.backbones.pretrained import PretrainedBackbone
from harness.core.records import EncodedVideo, Frames, Prompt, VisualSequence
from harness.hf.checkpoints import save_all, seeded, tiny_checkpoint
from harness.hf.text import ENDOFTEXT, IMAGE, LLAVA_CHAT_TEMPLATE, VIDEO, chat_ids, tiny_tokenizer
from harness.methods.hooks import HookUnavailable

if TYPE_CHECKING:  # transformers loads on first use: the spec check needs only the class attributes
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionProcessor,
        PreTrainedTokenizerFast,
    )

TINY_IMAGE_SIZE = 64
TINY_PATCH_SIZE = 8  # 8×8 patch grid, pooled 2× for video like the 7B's 27×27 → 14×14
TINY_FORMAT = 1  # bump when the tiny config, tokenizer corpus or layout changes
# Every published LLaVA-OneVision / LLaVA-Video checkpoint's tower: google/siglip-so400m-patch14-384
# (vision_config of llava-hf/llava-onevision-qwen2-7b-ov-hf): a 27×27 patch grid.
SO400M_IMAGE_SIZE, SO400M_PATCH_SIZE = 384, 14


def pooled_tokens(image_size: int, patch_size: int) -> int:
    """Tokens per video frame: the g×g patch grid pooled bilinearly to ⌈g/2⌉×⌈g/2⌉ (transformers'
    LlavaOnevisionModel.apply_pooling; arXiv 2408.03326 §4: 196 per frame for the 7B)."""
    return math.ceil(image_size // patch_size / 2) ** 2


def local_tokens_per_frame(directory: Path) -> int:
    """Tokens per video frame of the LLaVA-OV checkpoint in `directory`, from its config alone (no weights; read as
    JSON when it spells out the tower's sizes, which spares the spec listing importing transformers)."""
    config = directory / "config.json"
    vision = json.loads(config.read_text()).get("vision_config", {}) if config.is_file() else {}
    if "image_size" not in vision or "patch_size" not in vision:  # left at the class defaults: ask transformers
        from transformers import AutoConfig

        vision = AutoConfig.from_pretrained(directory).vision_config.to_dict()
    return pooled_tokens(vision["image_size"], vision["patch_size"])


def grid_pinpoints(tile: int = TINY_IMAGE_SIZE) -> list[list[int]]:
    """The 7B's anyres grid (1..6 tiles per side) scaled to a small tile size."""
    return [[tile * h, tile * w] for h in range(1, 7) for w in range(1, 7)]


def _tiny_config(tokenizer: PreTrainedTokenizerFast) -> LlavaOnevisionConfig:
    from transformers import LlavaOnevisionConfig, Qwen2Config, SiglipVisionConfig

    vision = SiglipVisionConfig(
        image_size=TINY_IMAGE_SIZE,
        patch_size=TINY_PATCH_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        vision_use_head=False,  # LLaVA-OV uses the patch features, not SigLIP's pooling head
    )
    text = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlavaOnevisionConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=grid_pinpoints(),
    )


def build_tiny_model(seed: int = 0) -> tuple[LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor]:
    """The seeded tiny model and its processor, in memory (deterministic for a given seed)."""
    tokenizer = tiny_tokenizer()
    return init_model(_tiny_config(tokenizer), tokenizer, seed).eval(), tiny_processor(tokenizer)


def tiny_processor(tokenizer: PreTrainedTokenizerFast, image_size: int = TINY_IMAGE_SIZE,
                   patch_size: int = TINY_PATCH_SIZE) -> LlavaOnevisionProcessor:
    """LLaVA-OV's processor at a small frame size (tiny: 64 px frames, 8 px patches)."""
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor

    size = {"height": image_size, "width": image_size}
    return LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=grid_pinpoints(image_size)),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        num_image_tokens=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_CHAT_TEMPLATE,
    )


def init_model(config: LlavaOnevisionConfig, tokenizer: PreTrainedTokenizerFast,
               seed: int) -> LlavaOnevisionForConditionalGeneration:
    """A randomly initialised model of `config` (weights from `seed` alone) that stops on the chat's end tokens."""
    from transformers import LlavaOnevisionForConditionalGeneration

    with seeded(seed):
        model = LlavaOnevisionForConditionalGeneration(config)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(ENDOFTEXT)]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


class LlavaOvBackbone(PretrainedBackbone):
    """`llava-ov`: encode_frames gives one row of `tokens_per_frame` tokens per frame; generate appends LLaVA-OV's
    learned image_newline after the (possibly reduced) visual sequence."""

    hooks: ClassVar[frozenset[str]] = frozenset(
        {"embed_text", "prompt_embeds", "vision_attention", "vision_features", "llm_prune", "llm_fuse",
         "coarse_encode"})
    placement: ClassVar[Placement] = "sequential"
    separator_tokens: ClassVar[int] = 1  # the learned image_newline after the video
    family: ClassVar[str] = "llava-ov"
    tiny_name: ClassVar[str] = "llava-ov-tiny"
    model_class: ClassVar[str] = "LlavaOnevisionForConditionalGeneration"
    tiny_kind: ClassVar[str] = "llava-ov"  # cache name of its tiny checkpoints
    tiny_seed_offset: ClassVar[int] = 0  # tiny_seed s draws its weights with seed s + this

    def __init__(self, model: LlavaOnevisionForConditionalGeneration, processor: Any, name: str) -> None:
        super().__init__(model, processor, name)
        vision = model.config.vision_config
        grid = vision.image_size // vision.patch_size
        with torch.inference_mode():  # ask the model's own pooling, so this always matches encode_frames
            probe = torch.zeros(1, grid * grid, self.hidden_size, dtype=self.dtype, device=self.device)
            self.tokens_per_frame: int = model.model.apply_pooling(probe).shape[1]

    @classmethod
    def tiny_checkpoint(cls, seed: int) -> Path:
        own = seed + cls.tiny_seed_offset
        return tiny_checkpoint(cls.tiny_kind, TINY_FORMAT, own, lambda staging: save_all(staging,
                                                                                         *build_tiny_model(own)))

    @classmethod
    def tokens_per_frame_for(cls, **args: Any) -> int:
        bound = bind_arguments(cls.family, cls.load, args)
        checkpoint = bound["checkpoint"]
        if cls._tiny_seed(checkpoint, bound["tiny_seed"]) is not None:
            return pooled_tokens(TINY_IMAGE_SIZE, TINY_PATCH_SIZE)  # 16
        if Path(checkpoint).expanduser().is_dir():  # a local checkpoint says itself (config only, no weights)
            return local_tokens_per_frame(Path(checkpoint).expanduser())
        return pooled_tokens(SO400M_IMAGE_SIZE, SO400M_PATCH_SIZE)  # 196

    def encode_frames(self, frames: Frames) -> EncodedVideo:
        """Official LLaVA-OV video path (video processor → SigLIP → projector → 2× pooling): [T, M, C]."""
        if len(frames) == 0:
            raise ValueError("encode_frames needs at least one frame")
        with torch.inference_mode():
            pixels = self._video_pixels(frames)  # [1, T, 3, S, S]
            features = self.model.get_video_features(pixels, return_dict=True).pooler_output  # [1, T*M + 1, C]
        # get_video_features appends image_newline after the whole video; generate() re-appends it after the
        # (possibly reduced) sequence, so per-frame tokens leave without it.
        tokens = features[0, :-1].reshape(len(frames), self.tokens_per_frame, self.hidden_size)
        return EncodedVideo(tokens, tuple(frames.timestamps_s))

    def coarse_side(self, downscale: int) -> int:
        """Side of the token grid `encode_frames_coarse(frames, downscale)` gives: the full pooled side ÷ downscale,
        which must divide it (so frames × side² stays exactly the budget the key-clip trade promises)."""
        side = math.isqrt(self.tokens_per_frame)
        if downscale < 1 or side % downscale:
            divisors = ", ".join(str(d) for d in range(1, side + 1) if side % d == 0)
            raise ValueError(f"{self.name}: coarse_encode downscale {downscale} does not divide the {side}×{side} "
                             f"token grid (valid: {divisors})")
        return side // downscale

    def encode_frames_coarse(self, frames: Frames, downscale: int) -> EncodedVideo:
        """encode_frames with the token grid's side divided by `downscale` (hook coarse_encode): the model's own video
        tokens (its 2× bilinear pooling, LLaVA-OV's pooled-grid representation, arXiv 2408.03326 §4), then a
        downscale × downscale average, so every pooled token counts (a direct bilinear resize to the small side would
        read a 2 × 2 neighbourhood per output and skip most patches). [T, side², C]; one newline after the video in
        generate as always."""
        side = self.coarse_side(downscale)
        encoded = self.encode_frames(frames)
        if downscale == 1:
            return encoded
        tokens = encoded.tokens
        full = side * downscale
        maps = tokens.view(len(frames), full, full, -1).permute(0, 3, 1, 2).float()
        pooled = torch.nn.functional.avg_pool2d(maps, downscale).to(tokens.dtype)
        return EncodedVideo(pooled.permute(0, 2, 3, 1).reshape(len(frames), side * side, -1), encoded.timestamps_s)

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
        return pre, self.encode_frames(frames).tokens

    def vision_attention(self, frames: Frames) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean attention each vision token receives [T, M] and head-averaged keys [T, M, d] (hooks.HOOKS).

        Read at the SigLIP layer whose output is the feature layer (q/k captured there, softmax recomputed,
        since SDPA returns no weights), then pooled with the model's own 2× bilinear pooling.
        """
        if len(frames) == 0:
            raise ValueError("vision_attention needs at least one frame")
        tower = self.model.model.vision_tower
        layers = tower.encoder.layers
        feature_layer = self.model.config.vision_feature_layer
        if not isinstance(feature_layer, int):
            raise HookUnavailable("vision_attention: multi-layer vision features are not supported")
        # hidden_states[0] is the embedding output, so hidden_states[f] is the output of layer f - 1
        attn = layers[feature_layer % (len(layers) + 1) - 1].self_attn
        captured: dict[str, torch.Tensor] = {}
        handles = [
            attn.q_proj.register_forward_hook(lambda _m, _i, out: captured.__setitem__("q", out)),
            attn.k_proj.register_forward_hook(lambda _m, _i, out: captured.__setitem__("k", out)),
        ]
        try:
            with torch.inference_mode():
                tower(pixel_values=self._video_pixels(frames)[0])
        finally:
            for handle in handles:
                handle.remove()
        t, p, _ = captured["q"].shape
        q = captured["q"].view(t, p, attn.num_heads, attn.head_dim).transpose(1, 2)
        k = captured["k"].view(t, p, attn.num_heads, attn.head_dim).transpose(1, 2)
        weights = torch.softmax((q @ k.transpose(-1, -2)).float() * attn.scale, dim=-1)  # [T, H, P, P]
        received = weights.mean(dim=(1, 2))  # SigLIP has no CLS: mean over heads and queries
        keys = k.mean(dim=1).float()  # [T, P, d]
        pool = self.model.model.apply_pooling
        return pool(received[..., None])[..., 0], pool(keys)

    def _inputs(self, visual: VisualSequence, prompt: Prompt) -> PromptInputs:
        """The chat with the visual tokens + image_newline at the video placeholder; positions are sequential."""
        tokens = self._visual_tokens(visual)
        ids, at = chat_ids(self.tokenizer, prompt, {"type": "video"}, self.video_token_id, VIDEO)
        if len(visual):  # image_newline ends a video; with no visual tokens (blind) there is no video to end
            tokens = torch.cat([tokens, self.model.model.image_newline.to(self.dtype)[None]])
        embeds = self._splice(ids[:at], tokens, ids[at + 1 :])
        # the trailing image_newline is a separator, not a visual token to rank: in-LLM pruning always keeps it
        return PromptInputs(embeds, range(at, at + len(visual)), len(tokens), len(ids) - 1)

    def _video_pixels(self, frames: Frames) -> torch.Tensor:
        batch = self.processor.video_processor(
            videos=[frames.pixels], input_data_format="channels_last", return_tensors="pt"
        )
        return batch["pixel_values_videos"].to(self.device, self.dtype)


class LlavaVideoBackbone(LlavaOvBackbone):
    """`llava-video`: the LLaVA-OV class with LLaVA-Video's weights; its tiny checkpoints have their own seeds,
    distinct weights of the same class, as LLaVA-Video is."""

    family: ClassVar[str] = "llava-video"
    tiny_name: ClassVar[str] = "llava-video-tiny"
    tiny_kind: ClassVar[str] = "llava-video"
    tiny_seed_offset: ClassVar[int] = 1_000


class TinyBackbone(LlavaOvBackbone):
    """`tiny`: LLaVA-OV on the seed-0 tiny checkpoint unless told otherwise."""

    family: ClassVar[str] = "tiny"
    tiny_name: ClassVar[str] = "tiny"
    default_tiny_seed: ClassVar[int | None] = 0
