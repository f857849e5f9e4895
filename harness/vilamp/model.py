"""The ViLAMP backbone (github steven-ccq/ViLAMP, `LlavaQwenForCausalLM`) on a checkpoint in the official layout
(harness.vilamp.checkpoint): SigLIP keyframe patches through the projector, pooled to 14×14; its own CLIP and DFM maps
offered to DKS and DFM as hooks; the qwen_1_5 conversation with the learned `image_newline` after the video."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from harness.backbones.base import Placement, bind_arguments
from harness.backbones.decoding import ChatBackbone, PromptInputs
from harness.core.config import ConfigError
from harness.core.records import EncodedVideo, Frames, Prompt, VisualSequence
from harness.hf.checkpoints import on_disk
from harness.hf.loading import resolve_dtype
from harness.hf.text import DEFAULT_SYSTEM, ENDOFTEXT, IM_END
from harness.methods.encoders import CLIPEncoder, channels_first
from harness.methods.hooks import require_hook
from harness.vilamp.checkpoint import (
    HF_REPO,
    TINY_VISION,
    SigPooling,
    find_clip_dir,
    keyframe_tokens,
    load_official,
    official_dir,
    tiny_vilamp_checkpoint,
)

if TYPE_CHECKING:  # transformers loads on first use: the spec check needs only the class attributes
    import transformers

VISION_CHUNK = 60  # frames per SigLIP forward, as the official SigLIP tower


class LearnedScorer:
    """harness.vilamp.dfm.PatchScorer over the checkpoint's SigPooling maps and a CLIP text embedding."""

    def __init__(self, pooling: SigPooling, query: torch.Tensor) -> None:
        self.pooling = pooling
        weight = pooling.linear_q.weight
        self.query = pooling.linear_q(query.to(weight.device, weight.dtype))  # [C]

    def scores(self, patches: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        pool = self.pooling
        rel = F.cosine_similarity(pool.linear_iq(patches), self.query.expand_as(patches), dim=-1)
        red = F.cosine_similarity(pool.linear_ik(patches), pool.linear_k(references), dim=-1)
        return ((rel - red) / pool.tau).float()


class ViLAMPBackbone(ChatBackbone):
    """`vilamp`: the official checkpoint from disk (never the hub). DKS and DFM reach its own CLIP and maps
    through hooks: `image_text_encoder`, `encode_patches`/`pool_patches`, `dfm_scorer`, `non_keyframe_tokens`.
    An instance offers the composer hook its checkpoint has: `dfm_scorer` (sig_pooling) or `non_keyframe_tokens`
    (single_token)."""

    name = "vilamp"
    hooks: ClassVar[frozenset[str]] = frozenset({"embed_text", "prompt_embeds", "patch_features",
                                                 "image_text_encoder", "dfm_scorer", "non_keyframe_tokens"})
    placement: ClassVar[Placement] = "sequential"
    separator_tokens: ClassVar[int] = 1  # the learned image_newline after the video

    @classmethod
    def load(cls, *, checkpoint: str | None = None, clip: str | None = None, dtype: str = "bfloat16",
             device: str = "cpu") -> ViLAMPBackbone:
        cls.preflight(checkpoint=checkpoint, clip=clip, dtype=dtype, device=device)
        return cls._from_dir(official_dir(checkpoint), clip, resolve_dtype(dtype), device)

    @classmethod
    def preflight(cls, **args: Any) -> None:
        """Arguments and dtype; one line when the 7B checkpoint or the CLIP tokenizer it needs is not on disk."""
        bound = bind_arguments("vilamp", cls.load, args)
        resolve_dtype(bound["dtype"])
        directory = official_dir(bound["checkpoint"])
        if not (directory / "config.json").is_file():
            raise ConfigError(f"vilamp: checkpoint directory {directory} not found; download {HF_REPO} there "
                              f"(huggingface-cli download {HF_REPO} --local-dir {directory}) or set HARNESS_VILAMP")
        clip_dir = find_clip_dir(directory, json.loads((directory / "config.json").read_text()), bound["clip"])
        if not (clip_dir / "tokenizer_config.json").is_file():
            raise ConfigError(f"vilamp: the CLIP ViT-B/32 tokenizer is expected in {clip_dir}; download "
                              f"openai/clip-vit-base-patch32 there or set HARNESS_CLIP_B32")

    @classmethod
    def tokens_per_frame_for(cls, **args: Any) -> int:
        directory = cls.checkpoint_dir(**args)
        return keyframe_tokens(json.loads((directory / "config.json").read_text()) if directory else {})

    @classmethod
    def checkpoint_dir(cls, **args: Any) -> Path | None:
        return on_disk(official_dir(bind_arguments("vilamp", cls.load, args)["checkpoint"]))

    @classmethod
    def _from_dir(cls, directory: Path, clip: str | None, dtype: torch.dtype, device: str) -> ViLAMPBackbone:
        from transformers import AutoTokenizer, CLIPImageProcessor
        lm, cfg = load_official(directory, dtype)
        clip_dir = find_clip_dir(directory, cfg, clip)
        clip_processor = (CLIPImageProcessor.from_pretrained(clip_dir)
                          if (clip_dir / "preprocessor_config.json").is_file() else CLIPImageProcessor())
        return cls(lm.to(device), cfg, AutoTokenizer.from_pretrained(directory),
                   AutoTokenizer.from_pretrained(clip_dir), clip_processor)

    def __init__(self, lm: transformers.Qwen2ForCausalLM, cfg: dict[str, Any], tokenizer: Any, clip_tokenizer: Any,
                 clip_processor: transformers.CLIPImageProcessor) -> None:
        from transformers import SiglipImageProcessor
        self.model = lm
        self.tokenizer = tokenizer
        self.device, self.dtype = lm.device, lm.dtype
        self.hidden_size = lm.config.hidden_size
        stops = {tokenizer.convert_tokens_to_ids(t) for t in (IM_END, ENDOFTEXT)} - {None, tokenizer.unk_token_id}
        self.stop_ids = frozenset(stops)
        self.composer_type: str = cfg.get("composer_type", "single_token")
        unused = "non_keyframe_tokens" if self.composer_type == "sig_pooling" else "dfm_scorer"
        self.hooks = type(self).hooks - {unused}  # type: ignore[misc]  # this checkpoint's composer only
        self.max_length: int = int(cfg.get("tokenizer_model_max_length", 32768))
        inner = lm.model
        self.tower: transformers.SiglipVisionModel = inner.vision_tower.vision_tower.vision_model
        vision = self.tower.config
        self.grid = vision.image_size // vision.patch_size
        self.image_processor = SiglipImageProcessor(size={"height": vision.image_size, "width": vision.image_size})
        self.image_text_encoder = CLIPEncoder("vilamp-clip", inner.frame_selector.model, clip_processor,
                                              clip_tokenizer)
        self.pool_mode: str = cfg.get("mm_spatial_pool_mode", "bilinear")
        if self.pool_mode not in ("bilinear", "none"):
            raise ConfigError(f"config.json mm_spatial_pool_mode={self.pool_mode!r}: supported: 'bilinear', 'none'")
        self.tokens_per_frame: int = keyframe_tokens(cfg)

    def encode_patches(self, frames: Frames) -> torch.Tensor:
        """Projected SigLIP penultimate-layer patches [T, g², C] (the stored tower already lacks its last layer)."""
        if len(frames) == 0:
            raise ValueError("encode_patches needs at least one frame")
        out = []
        with torch.inference_mode():
            for start in range(0, len(frames), VISION_CHUNK):
                pixels = self.image_processor(images=channels_first(frames.pixels[start : start + VISION_CHUNK]),
                                              return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
                # hidden_states[-1] is the last stored layer's output before post_layernorm, as LLaVA-NeXT reads it
                hidden = self.tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-1]
                out.append(self.model.model.mm_projector(hidden))
        return torch.cat(out)

    def pool_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """The official get_2dPool: bilinear resize of the g×g grid to ⌈g/2⌉×⌈g/2⌉ ('none' keeps it)."""
        if self.pool_mode == "none":
            return patches
        t, _, c = patches.shape
        grid = patches.view(t, self.grid, self.grid, c).permute(0, 3, 1, 2)
        side = math.ceil(self.grid / 2)
        return F.interpolate(grid, size=[side, side], mode="bilinear").permute(0, 2, 3, 1).reshape(t, -1, c)

    def encode_frames(self, frames: Frames) -> EncodedVideo:
        return EncodedVideo(self.pool_patches(self.encode_patches(frames)), tuple(frames.timestamps_s))

    def dfm_scorer(self, question: str) -> LearnedScorer:
        require_hook(self, "dfm_scorer", f"DFM scoring (composer_type 'sig_pooling', not {self.composer_type!r})")
        with torch.inference_mode():
            return LearnedScorer(self.model.model.composer_projector, self.image_text_encoder.embed_text(question))

    def non_keyframe_tokens(self, frames: Frames) -> torch.Tensor:
        """single_token variant: the composer MLP on each frame's CLIP image embedding: [T, C]."""
        with torch.inference_mode():
            embeddings = self.image_text_encoder.embed_images(frames).to(self.device, self.dtype)
            return self.model.model.composer_projector(embeddings)

    def _inputs(self, visual: VisualSequence, prompt: Prompt) -> PromptInputs:
        """qwen_1_5 conversation with the video (+ image_newline) where the official `<image>` placeholder sits; the
        whole sequence is cut from the end at tokenizer_model_max_length, as the official code does."""
        tokens = self._visual_tokens(visual)
        system = prompt.system or DEFAULT_SYSTEM
        before = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"
        after = f"\n{prompt.user}<|im_end|>\n<|im_start|>assistant\n{prompt.assistant_prefix}"
        ids_before = self.tokenizer(before, add_special_tokens=False)["input_ids"]
        ids_after = self.tokenizer(after, add_special_tokens=False)["input_ids"]
        newline = self.model.model.image_newline.to(self.dtype)[None]
        embeds = self._splice(ids_before, torch.cat([tokens, newline]), ids_after)[:, : self.max_length]
        at = len(ids_before)
        return PromptInputs(embeds, range(at, at + len(visual)), len(visual) + 1, len(ids_before) + len(ids_after))


class ViLAMPTinyBackbone(ViLAMPBackbone):
    """`vilamp-tiny`: the same code on a tiny random checkpoint built once in the cache."""

    @classmethod
    def load(cls, *, seed: int = 0, device: str = "cpu") -> ViLAMPBackbone:  # type: ignore[override]
        cls.preflight(seed=seed, device=device)
        return cls._from_dir(tiny_vilamp_checkpoint(seed), None, torch.float32, device)

    @classmethod
    def preflight(cls, **args: Any) -> None:
        bind_arguments("vilamp-tiny", cls.load, args)

    @classmethod
    def tokens_per_frame_for(cls, **args: Any) -> int:
        bind_arguments("vilamp-tiny", cls.load, args)
        return keyframe_tokens({"harness_vision_config": TINY_VISION})  # 16

    @classmethod
    def checkpoint_dir(cls, **args: Any) -> Path:
        return tiny_vilamp_checkpoint(bind_arguments("vilamp-tiny", cls.load, args)["seed"])
