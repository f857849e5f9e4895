"""Parameter counts of an `Architecture`, module by module as transformers and harness.vilamp.checkpoint build it; the
weights' memory is these × the dtype's bytes."""

from __future__ import annotations

from harness.cost.architectures import CLIP_B32, Architecture, Llm, Tower

# openai/clip-vit-base-patch32 config.json text_config (ViLAMP keeps the whole CLIPModel as its frame selector):
# 12 layers, width 512, MLP 2048, vocab 49408, 77 positions; projection_dim 512.
CLIP_B32_TEXT = dict(hidden=512, intermediate=2048, layers=12, vocab=49408, positions=77, projection=512)


def llm(m: Llm) -> int:
    """Qwen2: embeddings, an untied LM head (tie_word_embeddings false in Qwen2-7B and the tiny configs), per layer
    q/k/v with biases, o, the SwiGLU MLP and two RMSNorms, and the final norm."""
    kv = m.kv_heads * m.head_dim
    layer = (m.hidden * m.hidden + m.hidden) + 2 * (m.hidden * kv + kv) + m.hidden * m.hidden \
        + 3 * m.hidden * m.intermediate + 2 * m.hidden
    return 2 * m.vocab * m.hidden + m.layers * layer + m.hidden


def vit(t: Tower) -> int:
    """SigLIP / CLIP vision tower (no pooling head): patch conv, position embeddings, pre-LN blocks, final LayerNorm;
    CLIP adds its class embedding and pre-LayerNorm."""
    patches = (t.image_size // t.patch) ** 2 + (1 if t.cls_token else 0)
    embed = 3 * t.patch ** 2 * t.hidden + (0 if t.cls_token else t.hidden) + patches * t.hidden
    layer = 4 * (t.hidden * t.hidden + t.hidden) + 2 * t.hidden * t.intermediate + t.intermediate + t.hidden \
        + 4 * t.hidden
    extra = (t.hidden + 2 * t.hidden) if t.cls_token else 0  # class embedding, pre_layrnorm
    return embed + t.layers * layer + 2 * t.hidden + extra


def qwen_vit(t: Tower, merger: tuple[int, ...]) -> int:
    """Qwen2.5-VL's ViT: bias-free Conv3d patches, blocks of qkv / proj with biases, a gated MLP with biases and two
    RMSNorms, then the merger (RMSNorm, Linear, GELU, Linear)."""
    embed = 3 * t.temporal_patch * t.patch ** 2 * t.hidden
    layer = 3 * t.hidden * t.hidden + 3 * t.hidden + t.hidden * t.hidden + t.hidden \
        + 3 * t.hidden * t.intermediate + 2 * t.intermediate + t.hidden + 2 * t.hidden
    return embed + t.layers * layer + t.hidden + projector(merger)


def projector(widths: tuple[int, ...]) -> int:
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def clip_text() -> int:
    c = CLIP_B32_TEXT
    h, i = c["hidden"], c["intermediate"]
    layer = 4 * (h * h + h) + 2 * h * i + i + h + 4 * h
    return (c["vocab"] + c["positions"]) * h + c["layers"] * layer + 2 * h + h * c["projection"]


def parameters(arch: Architecture, vilamp: bool) -> int:
    """Every parameter the backbone loads onto its device (a selector's own encoder is not the backbone's)."""
    if arch.tokens_per_frame is None:  # Qwen2.5-VL: its merger is the projector
        return llm(arch.llm) + qwen_vit(arch.vision, arch.projector)
    total = llm(arch.llm) + vit(arch.vision) + projector(arch.projector) + arch.llm.hidden  # + image_newline
    if vilamp and arch.encoder == CLIP_B32:  # the CLIP frame selector (both towers) and the SigPooling maps
        h, q = arch.llm.hidden, CLIP_B32_TEXT["projection"]
        total += vit(CLIP_B32) + CLIP_B32.hidden * q + 1 + clip_text() + 3 * (h * h + h) + q * h + h + 1
    elif vilamp and arch.encoder is not None:  # a tiny checkpoint: its CLIP image tower (the rest is negligible)
        total += vit(arch.encoder)
    return total
