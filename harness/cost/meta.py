"""Every full-size backbone on the meta device, in the harness' own backbone classes: no weights, no memory, and yet
the 7B code paths run, so a forward proves their shapes without a checkpoint (issue 18; tests/cost/
test_meta_forward.py).

`meta_backbone(spec)` builds the transformers model of the spec's `architecture` (LlavaOnevisionForConditionalGeneration
from SiglipVisionConfig + Qwen2Config, Qwen2_5_VLForConditionalGeneration, ViLAMP's own `build_model`) under
torch.device("meta") and wraps it in the spec's backbone class. Stand-ins: the tiny BPE tokenizer of the tiny
checkpoints (harness.hf.text; its ids are far below the 7B vocabularies, and a tokenizer changes no shape but the
prompt's length) for the LLM and for the CLIP text towers; the processors are the full-size ones.

`meta_values()` is the context a meta run needs. The model's floats are meta (shapes only), but the harness computes
indices from data it knows (token ids, attention masks, Qwen2.5-VL's grid and M-RoPE positions, the rows a reducer
keeps), and those must stay real. Inside it: integer data sent to the meta device, and bool data copied there, stay
on the CPU, computed for real; an op with any meta input runs on meta (its real inputs moved there); `.cpu()` of a meta
tensor stays meta (an unknown value stays unknown). A choice made from meta values has no answer, so the selection ops
return a fixed one of the right size as real indices: topk, sort and argsort the first indices in order, argmax/argmin
and max/min along a dim index 0 (counted in `MetaValues.fixed`). Any other read of a meta value (item(), nonzero, a
write into a real tensor) raises DataDependent naming the op; a shape error stays itself.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map_only
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    LlavaOnevisionConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Config,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
    SiglipVisionConfig,
)

from harness.backbones import BACKBONES
from harness.backbones.base import bind_arguments
from harness.backbones.llava_ov import LlavaOvBackbone, grid_pinpoints, init_model, tiny_processor
from harness.backbones.qwen25vl import (
    CHAT_TEMPLATE,
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    Qwen25VLBackbone,
    mrope_section,
)
from harness.cost.architectures import Architecture, Llm, Tower, architecture
from harness.hf.loading import resolve_dtype
from harness.hf.text import ENDOFTEXT, IM_END, IMAGE, VIDEO, tiny_tokenizer
from harness.methods.encoders import CLIPEncoder
from harness.model.specs import ModelSpec
from harness.model.video_model import VideoModel
from harness.vilamp.checkpoint import build_model
from harness.vilamp.model import ViLAMPBackbone

META, CPU = torch.device("meta"), torch.device("cpu")
aten = torch.ops.aten
ROPE_THETA = 1_000_000.0  # rope_theta of Qwen/Qwen2-7B-Instruct and Qwen/Qwen2.5-VL-7B-Instruct config.json
QWEN25VL_TOKENS_PER_SECOND = 2  # vision_config.tokens_per_second of Qwen/Qwen2.5-VL-7B-Instruct config.json
# orange-sk/ViLAMP-llava-qwen_sig's composer: the learned DFM maps, inferred from the checkpoint's name (its
# config.json was not readable: notes/vilamp.md §0.3); the official code's other one is "single_token".
VILAMP_COMPOSER = "sig_pooling"
VILAMP_SWITCHES = {"mm_projector_type": "mlp2x_gelu", "mm_spatial_pool_mode": "bilinear"}  # notes/vilamp.md §3


class DataDependent(RuntimeError):
    """An op needed the values of a meta tensor (it has none): a data-dependent step a meta run cannot take."""


# ---------------------------------------------------------------- meta values, real indices


def _real(tensor: torch.Tensor, copy: bool) -> bool:
    """Whether a tensor bound for the meta device stays real on the CPU: integer data (token ids, grids, positions,
    rows), and bool data copied there (an attention mask). A bool factory stays meta: a causal mask over a long
    prompt would cost n² bytes."""
    if tensor.is_floating_point() or tensor.is_complex():
        return False
    return copy or tensor.dtype != torch.bool


def _leaves(args: tuple, kwargs: dict) -> list[Any]:
    """An op's arguments, lists and tuples opened one level (how tensors and devices reach an op)."""
    out: list[Any] = []
    for value in (*args, *kwargs.values()):
        out.extend(value) if isinstance(value, list | tuple) else out.append(value)
    return out


def _first(indices: torch.Tensor, dim: int) -> torch.Tensor:
    """0, 1, 2, … along `dim` of a tensor shaped like `indices`: the choice that keeps the first entries in order."""
    if indices.ndim == 0:
        return torch.zeros((), dtype=torch.long)
    shape = [1] * indices.ndim
    shape[dim] = indices.shape[dim]
    return torch.arange(indices.shape[dim]).view(shape).expand(indices.shape).contiguous()


def _on_meta_device(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(META)
    if isinstance(value, list | tuple):
        return type(value)(v.to(META) if isinstance(v, torch.Tensor) and v.dtype != torch.bool else v for v in value)
    return value


def _data_dependent(func: Any, exc: Exception) -> DataDependent | None:
    """The error to raise for an op that failed on meta tensors, when it failed for want of values."""
    if isinstance(exc, NotImplementedError) or "meta tensor" in str(exc):  # nonzero, unique, item(), copy out
        return DataDependent(f"{func}: needs the values of a meta tensor")
    return None


# The selection ops (inference mode dispatches argsort itself, not as sort)
ORDERING = {aten.topk.default, aten.sort.default, aten.sort.stable}  # (values, indices): the first indices
ORDER = {aten.argsort.default, aten.argsort.stable}  # indices: the first indices
PICKING = {aten.max.dim, aten.min.dim}  # (values, indices): index 0
ARG = {aten.argmax.default, aten.argmin.default}  # indices: index 0
FIXED = ORDERING | ORDER | PICKING | ARG
# Python-level calls that may reach FIXED or move a tensor off the meta device: always through the dispatch rules
RULED = {torch.topk, torch.sort, torch.argsort, torch.argmax, torch.argmin, torch.max, torch.min,
         torch.Tensor.topk, torch.Tensor.sort, torch.Tensor.argsort, torch.Tensor.argmax, torch.Tensor.argmin,
         torch.Tensor.max, torch.Tensor.min, torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.cuda, torch.Tensor.type}
PYTHON_KEYS = torch._C.DispatchKeySet(torch._C.DispatchKey.Python) | torch._C.DispatchKeySet(
    torch._C.DispatchKey.PythonTLSSnapshot)


class MetaValues(TorchDispatchMode):
    """The dispatch rules of `meta_values()`; `fixed` counts the selection ops answered with a fixed choice."""

    def __init__(self) -> None:
        super().__init__()
        self.fixed: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        leaves = _leaves(args, kwargs)
        devices = [d for d in leaves if isinstance(d, torch.device)]
        if any(isinstance(t, torch.Tensor) and t.is_meta for t in leaves):
            return self._on_meta(func, args, kwargs, bool(devices))
        if not any(d.type == "meta" for d in devices):
            return func(*args, **kwargs)  # real data: computed for real
        out = func(*args, **kwargs)  # a factory or a copy onto the meta device
        copy = any(isinstance(t, torch.Tensor) for t in leaves)
        if not any(_real(t, copy) for t in tree_leaves(out) if isinstance(t, torch.Tensor)):
            return out
        args, kwargs = tree_map_only(torch.device, lambda d: CPU if d.type == "meta" else d, (args, kwargs))
        return func(*args, **kwargs)  # kept real

    def _on_meta(self, func: Any, args: tuple, kwargs: dict, devices: bool) -> Any:
        if func in FIXED:
            return self._fixed(func, args, kwargs)
        if func._schema.is_mutable:
            for argument, value in zip(func._schema.arguments, args, strict=False):
                written = argument.alias_info is not None and argument.alias_info.is_write
                if written and isinstance(value, torch.Tensor) and not value.is_meta:
                    raise DataDependent(f"{func}: writes meta values into a real tensor")
        if devices:  # .cpu() of a meta tensor stays meta: an unknown value stays unknown
            args, kwargs = tree_map_only(torch.device, lambda d: META, (args, kwargs))
        # Every real input goes to meta (a real tensor indexed by a meta one reads garbage); a real bool mask in an
        # index list stays, so meta[mask] keeps its known length.
        args = tuple(_on_meta_device(a) for a in args)
        kwargs = {k: _on_meta_device(v) for k, v in kwargs.items()}
        try:
            return func(*args, **kwargs)
        except (NotImplementedError, RuntimeError) as exc:
            raise _data_dependent(func, exc) or exc from exc

    def _fixed(self, func: Any, args: tuple, kwargs: dict) -> Any:
        self.fixed[func.__name__.split(".")[0]] += 1
        out = func(*args, **kwargs)  # meta values and indices of the right shapes
        if func in PICKING:
            return out[0], torch.zeros(out[1].shape, dtype=torch.long)
        if func in ARG:
            return torch.zeros(out.shape, dtype=torch.long)
        names = [a.name for a in func._schema.arguments]
        dim = kwargs.get("dim", args[names.index("dim")] if len(args) > names.index("dim") else -1)
        if func in ORDER:
            return _first(out, dim % max(out.ndim, 1))
        return out[0], _first(out[1], dim % max(out[1].ndim, 1))


def _attention_shapes(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any = None,
                      dropout_p: float = 0.0, is_causal: bool = False, scale: Any = None,
                      enable_gqa: bool = False) -> torch.Tensor:
    """scaled_dot_product_attention on meta tensors, by its shape contract: q [..., H, L, E], k [..., H_kv, S, E],
    v [..., H_kv, S, Ev], H a multiple of H_kv with enable_gqa (else equal), a mask broadcasting to [..., H, L, S]
    → [..., H, L, Ev]. Its meta kernel decomposes in Python (~2 ms a call), and Qwen2.5-VL's ViT calls it once per
    attention window: ~10⁴ calls for 32 frames."""
    heads, kv_heads = query.shape[-3], key.shape[-3]
    grouped = heads % kv_heads == 0 if enable_gqa else heads == kv_heads
    if (query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2] or key.shape[-3] != value.shape[-3]
            or not grouped or key.shape[:-3] != value.shape[:-3]):
        raise RuntimeError(f"scaled_dot_product_attention: query {list(query.shape)}, key {list(key.shape)} and "
                           f"value {list(value.shape)} do not fit (enable_gqa={enable_gqa})")
    scores = (*torch.broadcast_shapes(query.shape[:-3], key.shape[:-3]), heads, query.shape[-2], key.shape[-2])
    if attn_mask is not None and torch.broadcast_shapes(attn_mask.shape, scores) != scores:
        raise RuntimeError(f"scaled_dot_product_attention: mask {list(attn_mask.shape)} does not broadcast to {scores}")
    return query.new_empty((*scores[:-1], value.shape[-1]), dtype=query.dtype)


class _MetaCalls(TorchFunctionMode):
    """The Python-level half of the rules: torch.tensor(data, device=meta) does not dispatch, so integer data is kept
    real here; attention on meta tensors takes its shapes from `_attention_shapes`; and a call on meta tensors alone
    that no rule concerns (not in RULED) skips the dispatch rules, which would only cost time."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        leaves = _leaves(args, kwargs)
        tensors = [t for t in leaves if isinstance(t, torch.Tensor)]
        if func is torch.nn.functional.scaled_dot_product_attention and tensors[0].is_meta:
            return _attention_shapes(*args, **kwargs)
        device = kwargs.get("device")
        if func in (torch.tensor, torch.as_tensor) and not tensors and device and torch.device(device).type == "meta":
            out = func(*args, **{**kwargs, "device": CPU})
            return out if _real(out, copy=True) else out.to(META)
        if (tensors and func not in RULED and all(t.is_meta for t in tensors)
                and not any(isinstance(d, torch.device | str) for d in leaves)):
            try:
                with torch._C._ExcludeDispatchKeyGuard(PYTHON_KEYS):
                    return func(*args, **kwargs)
            except (NotImplementedError, RuntimeError) as exc:
                raise _data_dependent(func, exc) or exc from exc
        return func(*args, **kwargs)


@contextmanager
def meta_values() -> Iterator[MetaValues]:
    """The rules above, for building a meta backbone and for running it (module docstring)."""
    values = MetaValues()
    with _MetaCalls(), values:
        yield values


# ---------------------------------------------------------------- configs from an Architecture


def qwen2_config(llm: Llm) -> dict[str, Any]:
    """Qwen2's config keys for `llm` (the LLM of every full-size backbone)."""
    return dict(vocab_size=llm.vocab, hidden_size=llm.hidden, intermediate_size=llm.intermediate,
                num_hidden_layers=llm.layers, num_attention_heads=llm.heads, num_key_value_heads=llm.kv_heads,
                max_position_embeddings=llm.context_window)


def siglip_config(tower: Tower) -> dict[str, Any]:
    return dict(hidden_size=tower.hidden, intermediate_size=tower.intermediate, num_hidden_layers=tower.layers,
                num_attention_heads=tower.heads, image_size=tower.image_size, patch_size=tower.patch)


def clip_config(tower: Tower) -> CLIPConfig:
    """A CLIP whose vision tower is `tower`; the text tower and joint space are transformers' CLIPConfig defaults,
    which are openai/clip-vit-base-patch32's (the only CLIP a full-size spec uses)."""
    return CLIPConfig(vision_config=dict(siglip_config(tower)))


def clip_processor(tower: Tower) -> CLIPImageProcessor:
    """openai/clip-vit-base-patch32's preprocessor_config.json, at the tower's size: resize the short side, centre
    crop."""
    side = tower.image_size
    return CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})


def meta_clip(name: str, tower: Tower) -> CLIPEncoder:
    """A selector's image–text encoder at full size on the meta device (call inside `meta_values()`)."""
    with torch.device(META):
        model = CLIPModel(clip_config(tower))
    return CLIPEncoder(name, model, clip_processor(tower), tiny_tokenizer())


# ---------------------------------------------------------------- backbones


def meta_backbone(spec: ModelSpec, vilamp_composer: str = VILAMP_COMPOSER) -> Any:
    """The spec's backbone class around its full-size model on the meta device (call inside `meta_values()`);
    ConfigError (from `architecture`) when no full-size architecture is shipped for it. `vilamp_composer`: ViLAMP's
    composer_type (its checkpoint's is inferred, so both can be checked)."""
    arch = architecture(spec)
    cls = BACKBONES.get(spec.backbone.name)
    dtype = resolve_dtype(bind_arguments(spec.backbone.name, cls.load, spec.backbone.args)["dtype"])
    if issubclass(cls, Qwen25VLBackbone):
        return _qwen25vl(cls, arch, dtype)
    if issubclass(cls, LlavaOvBackbone):
        return _llava_ov(cls, arch, dtype)
    if issubclass(cls, ViLAMPBackbone):
        return _vilamp(cls, arch, dtype, vilamp_composer)
    raise TypeError(f"model {spec.name!r}: no meta build for backbone class {cls.__name__}")


def _llava_ov(cls: type[LlavaOvBackbone], arch: Architecture, dtype: torch.dtype) -> LlavaOvBackbone:
    """LLaVA-OV / LLaVA-Video as llava-hf/llava-onevision-qwen2-7b-ov-hf configures it: the full patch grid
    (vision_feature_select_strategy "full", last layer), its anyres grid of 384 px tiles."""
    tokenizer = tiny_tokenizer()
    vision = arch.vision
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(**siglip_config(vision), vision_use_head=False),
        text_config=Qwen2Config(**qwen2_config(arch.llm), rope_parameters={"rope_type": "default",
                                                                          "rope_theta": ROPE_THETA},
                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO),
        vision_feature_select_strategy="full", vision_feature_layer=-1,
        image_grid_pinpoints=grid_pinpoints(vision.image_size),
    )
    with torch.device(META):
        model = init_model(config, tokenizer, seed=0).to(dtype).eval()
    return cls(model, tiny_processor(tokenizer, vision.image_size, vision.patch), cls.family)


def _qwen25vl(cls: type[Qwen25VLBackbone], arch: Architecture, dtype: torch.dtype) -> Qwen25VLBackbone:
    """Qwen2.5-VL-7B-Instruct: window-attention ViT, 2×2 merger, M-RoPE; its processors are transformers'
    Qwen2VL image/video processor defaults (patch 14, merge 2, temporal 2; 128–768 merged tokens' worth of pixels a
    video frame: qwen-vl-utils' VIDEO_MIN_PIXELS / VIDEO_MAX_PIXELS)."""
    tokenizer = tiny_tokenizer(CHAT_TEMPLATE, IMAGE_PAD, VIDEO_PAD, markers=(VISION_START, VISION_END))
    ids = tokenizer.convert_tokens_to_ids
    vision, llm = arch.vision, arch.llm
    config = Qwen2_5_VLConfig(
        vision_config={"depth": vision.layers, "hidden_size": vision.hidden, "intermediate_size": vision.intermediate,
                       "num_heads": vision.heads, "patch_size": vision.patch, "spatial_merge_size": vision.merge,
                       "temporal_patch_size": vision.temporal_patch, "out_hidden_size": arch.projector[-1],
                       "window_size": vision.window, "fullatt_block_indexes": list(vision.full_layers),
                       "tokens_per_second": QWEN25VL_TOKENS_PER_SECOND},
        text_config={**qwen2_config(llm), "eos_token_id": ids(IM_END), "pad_token_id": ids(ENDOFTEXT),
                     "bos_token_id": None, "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_THETA,
                                                               "mrope_section": mrope_section(llm.head_dim)}},
        image_token_id=ids(IMAGE_PAD), video_token_id=ids(VIDEO_PAD),
        vision_start_token_id=ids(VISION_START), vision_end_token_id=ids(VISION_END),
    )
    common = dict(patch_size=vision.patch, temporal_patch_size=vision.temporal_patch, merge_size=vision.merge)
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(**common), tokenizer=tokenizer,
                                    video_processor=Qwen2VLVideoProcessor(**common, do_sample_frames=False),
                                    chat_template=CHAT_TEMPLATE)
    with torch.device(META):
        model = Qwen2_5_VLForConditionalGeneration(config).to(dtype).eval()
    model.generation_config.eos_token_id = [ids(IM_END), ids(ENDOFTEXT)]
    return cls(model, processor, cls.family)


def _vilamp(cls: type[ViLAMPBackbone], arch: Architecture, dtype: torch.dtype, composer: str) -> ViLAMPBackbone:
    """ViLAMP-7B in the official layout, from an official-style config.json dict of the architecture's numbers."""
    tokenizer = tiny_tokenizer()
    encoder = arch.encoder
    if encoder is None:
        raise TypeError(f"{arch.name}: ViLAMP needs its selector encoder in the architecture")
    clip = clip_config(encoder)
    cfg = {
        **qwen2_config(arch.llm), "rope_theta": ROPE_THETA, "tie_word_embeddings": False,
        "eos_token_id": tokenizer.convert_tokens_to_ids(IM_END), **VILAMP_SWITCHES, "composer_type": composer,
        "mm_hidden_size": arch.vision.hidden, "composer_proj_dim": clip.projection_dim,
        "tokenizer_model_max_length": arch.llm.context_window,
        # build_model deletes the tower's last layer, as the official SigLIP tower does: the stored depth + 1
        "harness_vision_config": {**siglip_config(arch.vision), "num_hidden_layers": arch.vision.layers + 1},
        "harness_clip_config": clip.to_dict(),
    }
    with torch.device(META):
        lm = build_model(cfg).to(dtype).eval()
    return cls(lm, cfg, tokenizer, tiny_tokenizer(), clip_processor(encoder))


class MetaVideoModel(VideoModel):
    """A VideoModel (the spec's own selector, reducer and model-half code) over a backbone built here instead of one
    loaded from weights."""

    def __init__(self, spec: ModelSpec, backbone: Any) -> None:
        super().__init__(spec)
        self._backbone = backbone
