"""The ViLAMP model in the official parameter layout (github steven-ccq/ViLAMP, `LlavaQwenForCausalLM`).

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
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from harness.backbones.base import Placement, bind_arguments
from harness.backbones.decoding import ChatBackbone, PromptInputs
from harness.core.config import ConfigError
from harness.core.paths import cache_dir
from harness.core.records import EncodedVideo, Frames, Prompt, VisualSequence
from harness.hf.checkpoints import seeded, tiny_checkpoint
from harness.hf.loading import resolve_dtype
from harness.hf.text import DEFAULT_SYSTEM, ENDOFTEXT, IM_END, tiny_tokenizer
from harness.methods.encoders import CLIPEncoder, build_tiny_clip, channels_first, clip_b32_dir
from harness.methods.hooks import require_hook

if TYPE_CHECKING:  # transformers loads on first use: the spec check needs only the class attributes
    import transformers

HF_REPO = "orange-sk/ViLAMP-llava-qwen_sig"  # the README's install link since 2025-09-10
# google/siglip-so400m-patch14-384 (config.json of that repo); ViLAMP's `mm_vision_tower`.
SO400M = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
              image_size=384, patch_size=14, layer_norm_eps=1e-6)
QWEN2_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings")
VISION_CHUNK = 60  # frames per SigLIP forward, as the official SigLIP tower


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


# ---------------------------------------------------------------- config + build


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


# ---------------------------------------------------------------- backbone


def official_dir(checkpoint: str | None = None) -> Path:
    return Path(checkpoint or os.environ.get("HARNESS_VILAMP") or cache_dir() / "models" / "ViLAMP-llava-qwen_sig")


def _clip_dir(directory: Path, cfg: dict[str, Any], clip: str | None) -> Path:
    """The CLIP tokenizer/processor: `clip`, else `clip_model_path` inside the checkpoint, else clip-vit-b32's."""
    if clip:
        return Path(clip)
    inside = directory / str(cfg.get("clip_model_path", ""))
    return inside if cfg.get("clip_model_path") and inside.is_dir() else clip_b32_dir()


def _tokens_per_frame(cfg: dict[str, Any]) -> int:
    """Keyframe tokens: the SigLIP g×g grid, pooled bilinearly to ⌈g/2⌉×⌈g/2⌉ by the official get_2dPool unless
    mm_spatial_pool_mode is 'none'; 196 for the 7B (so400m-patch14-384: 27 → 14)."""
    vision = {**SO400M, **cfg.get("harness_vision_config", {})}
    grid = vision["image_size"] // vision["patch_size"]
    side = grid if cfg.get("mm_spatial_pool_mode", "bilinear") == "none" else math.ceil(grid / 2)
    return side * side


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
        clip_dir = _clip_dir(directory, json.loads((directory / "config.json").read_text()), bound["clip"])
        if not (clip_dir / "tokenizer_config.json").is_file():
            raise ConfigError(f"vilamp: the CLIP ViT-B/32 tokenizer is expected in {clip_dir}; download "
                              f"openai/clip-vit-base-patch32 there or set HARNESS_CLIP_B32")

    @classmethod
    def tokens_per_frame_for(cls, **args: Any) -> int:
        config = official_dir(bind_arguments("vilamp", cls.load, args)["checkpoint"]) / "config.json"
        return _tokens_per_frame(json.loads(config.read_text()) if config.is_file() else {})

    @classmethod
    def _from_dir(cls, directory: Path, clip: str | None, dtype: torch.dtype, device: str) -> ViLAMPBackbone:
        from transformers import AutoTokenizer, CLIPImageProcessor
        lm, cfg = load_official(directory, dtype)
        clip_dir = _clip_dir(directory, cfg, clip)
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
        self.tokens_per_frame: int = _tokens_per_frame(cfg)

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
        return _tokens_per_frame({"harness_vision_config": TINY_VISION})  # 16
