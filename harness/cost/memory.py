"""Peak memory of one sample as the code runs it: which tensors are alive together, stage by stage.

Each stage is a `Phase`: the bytes alive at its worst moment on the model's device (`device`), in the KV cache
(`kv`) and in host buffers (`host`: decoded uint8 frames and the image processors' tensors, which stay in host memory
when the model is on a GPU). The sizes follow from the transformers code the harness runs (transformers 5.23), read
for which locals hold which tensors:

- image processor (LLaVA-OV, SigLIP, CLIP; torchvision path): the uint8 frames, a contiguous clone, the resized uint8
  frames (when the size changes) and two float32 copies at the output size; then `.to(device, dtype)`.
- SigLIP / CLIP layer: the embeddings stay alive (the transformer's local) beside the layer input (the encoder
  loop's local); attention holds its LayerNorm output, q, k, v, the SDPA output and the output projection (6 of the
  hidden size); the MLP the residual, LayerNorm output, fc1 and activation (2 + 2 of the intermediate size). With
  `output_hidden_states=True` (ViLAMP's tower) every layer's output is kept as well.
- Qwen2 decoder layer (every LLM here): inputs_embeds stay alive (the caller's), cos/sin, the layer input; attention
  peaks in q's rotary (LayerNorm output, q, k, v and three q-sized temporaries); the MLP holds silu(gate), up and
  their product (3 of the intermediate size) beside the residual and the RMSNorm output; RMSNorm itself computes in
  float32 (4 of the hidden size in bf16, 2 in float32). DynamicCache.update concatenates: the cache is a copy.
  `logits_to_keep=1`: the LM head runs on the last position only.
- FastV / PyramidDrop (harness.backbones.fastv): an explicit additive causal mask [n, n] in the model dtype, built
  from a bool triu, zeros and a masked_fill clone (n²·(1 + 2b) while built), held through each run of layers, and
  with a mask SDPA gets k and v repeated to every head.
- Qwen2.5-VL's ViT: RMSNorm in float32, and its vision rotary upcasts q and k to float32 (17 of the hidden size in
  bf16 at its peak); its processor patchifies into one more float32 copy.
Attention is memory-efficient (SDPA / flash: no n×n scores) unless the attention implementation is `eager`, whose
scores and float32 softmax are added.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.cost.architectures import Llm, Tower

F32 = 4


@dataclass(frozen=True)
class Phase:
    name: str
    device: float  # bytes alive on the model's device besides the weights and the KV cache
    kv: float = 0.0
    host: float = 0.0


def processor(frames: int, decode: tuple[int, int], side: tuple[int, int], held_host: float = 0.0,
              patchify: bool = False) -> tuple[float, float]:
    """(host bytes at the processor's peak beyond `held_host`, its float32 output) for `frames` uint8 frames of size
    `decode` resized to `side`."""
    raw = frames * decode[0] * decode[1] * 3
    out = frames * side[0] * side[1] * 3
    resized = out if tuple(decode) != tuple(side) else 0
    floats = (3 if patchify else 2) * out * F32
    return held_host + raw + resized + floats, out * F32


def vit_layers(items: int, seq: int, tower: Tower, b: int, eager: bool, keep_all: bool = False) -> float:
    """Bytes a SigLIP / CLIP encoder holds at its worst layer over `items` × `seq` tokens (its input excluded)."""
    hidden = items * seq * tower.hidden * b
    inner = items * seq * tower.intermediate * b
    if keep_all:
        held = tower.layers * hidden  # the embeddings and every earlier layer's output (the hidden_states tuple)
    else:
        held = (2 if tower.layers > 1 else 1) * hidden  # the embeddings and, from layer 2 on, the layer input
    attention = 6 * hidden + (_eager(items * tower.heads * seq * seq, b) if eager else 0)
    return held + max(attention, 2 * hidden + 2 * inner)


def qwen_vit_layers(patches: int, per_row: int, tower: Tower, b: int, eager: bool) -> float:
    """Bytes Qwen2.5-VL's ViT holds at its worst block over `patches` patches, `per_row` per temporal group (its input
    pixels excluded)."""
    hidden = patches * tower.hidden * b
    inner = patches * tower.intermediate * b
    rope = 2 * patches * (tower.hidden // tower.heads) * F32  # the vision rotary's cos and sin, float32
    # apply_rotary_pos_emb_vision in float32: q and k upcast, q·cos, rotate_half(q)·sin, q_embed, then k's three
    rotary = 6 * hidden * F32 // b if b < F32 else 4 * hidden
    attention = 5 * hidden + rotary  # the block input, norm1's output and qkv (3)
    if eager:  # one attention segment at a time: a full-attention block's is a whole temporal group
        attention = max(attention, 7 * hidden + _eager(tower.heads * per_row * per_row, b))
    mlp = 3 * hidden + 3 * inner  # input, residual sum, norm2 output; silu(gate), up, their product
    return rope + max(attention, mlp, hidden + rms_norm(hidden, b))


def _eager(scores: int, b: int) -> float:
    """Eager attention's scores·scale, float32 softmax and its cast back, alive together."""
    return scores * (b + F32 + b) if b < F32 else 2 * scores * F32


def rms_norm(hidden: float, b: int) -> float:
    """Qwen2RMSNorm's float32 computation at its worst moment, its output included."""
    return 4 * hidden if b < F32 else 2 * hidden


def causal_mask(n: int, b: int) -> tuple[float, float]:
    """(bytes while fastv.causal_mask builds an n×n mask, bytes it holds): bool triu + zeros + masked_fill clone."""
    return n * n * (1 + 2 * b), n * n * b


def llm_prefill(counts: list[int], llm: Llm, b: int, held: float, host: float, masks: list[tuple[int, int]],
                eager: bool = False) -> list[Phase]:
    """The prefill's phases, `counts[l]` tokens entering layer l; `held` device bytes alive throughout (inputs_embeds,
    the visual tokens); `masks`: (first layer, tokens) of each run of layers that gets an explicit causal mask
    (FastV's prefill_pruned), else the model's own mask-free causal SDPA."""
    d = llm.head_dim
    per_token_kv = 2 * llm.kv_heads * d * b
    phases, kv = [], 0.0
    mask_at = dict(masks)
    mask = 0.0
    for layer, n in enumerate(counts):
        hidden, inner = n * llm.hidden * b, n * llm.intermediate * b
        kv_side = n * llm.kv_heads * d * b
        rope = 2 * n * d * b + n * 8  # cos, sin and the position ids
        x_in = hidden if layer else 0.0  # layer 0's input is inputs_embeds itself
        if layer in mask_at:
            building, mask = causal_mask(mask_at[layer], b)
            phases.append(Phase(f"causal mask for {mask_at[layer]:,} tokens", held + x_in + building, kv, host))
        base = held + rope + x_in + mask
        attention = 5 * hidden + 2 * kv_side
        if mask:  # no GQA in SDPA with a mask: k and v repeated to every head
            attention = max(attention, 4 * hidden + 2 * n * llm.heads * d * b)
        if eager:
            attention = max(attention, 3 * hidden + 2 * n * llm.heads * d * b + _eager(llm.heads * n * n, b))
        phases.append(Phase(f"LLM layer {layer} attention", base + attention, kv, host))
        kv += n * per_token_kv
        phases.append(Phase(f"LLM layer {layer} MLP", base + 2 * hidden + 3 * inner, kv, host))
        phases.append(Phase(f"LLM layer {layer} RMSNorm", base + hidden + rms_norm(hidden, b), kv, host))
    last = counts[-1] * llm.hidden * b
    phases.append(Phase("LLM final norm", held + 2 * counts[-1] * d * b + last + rms_norm(last, b), kv, host))
    return phases


def stages(layers: int, pruned: list[tuple[int, int]], n: int) -> list[int]:
    """Tokens entering each of `layers` layers: n until each (layer, count) stage, then the stage's count."""
    counts, current = [], n
    boundaries = dict(pruned)
    for layer in range(layers):
        current = boundaries.get(layer, current)
        counts.append(current)
    return counts
