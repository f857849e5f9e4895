"""FLOPs as `torch.utils.flop_counter.FlopCounterMode` counts them: 2·m·k·n per matmul (linear layers, bmm), the
patch-embedding convolution as 2 × output elements × its kernel volume, and attention as SDPA's formula, 4·s_q·s_k·d
per head (q·kᵀ and the weighted sum), not halved for a causal mask (the counter does not halve it either).
Elementwise work (norms, activations, softmax, rotary, bilinear pooling) and the image processors are not counted."""

from __future__ import annotations

from harness.cost.architectures import Llm, Tower


def vit(items: int, seq: int, tower: Tower) -> float:
    """A SigLIP / CLIP tower over `items` images of `seq` tokens (CLIP: the patches and its class token)."""
    patches = seq - (1 if tower.cls_token else 0)
    conv = 2 * items * patches * tower.hidden * 3 * tower.patch ** 2 * tower.temporal_patch
    mlp = (3 if tower.gated else 2) * tower.hidden * tower.intermediate
    per_layer = 2 * items * seq * (4 * tower.hidden ** 2 + mlp) + 4 * items * seq * seq * tower.hidden
    return conv + tower.layers * per_layer


def qwen_vit(rows: int, grid: tuple[int, int], tower: Tower) -> float:
    """Qwen2.5-VL's ViT over `rows` temporal groups of grid[0]×grid[1] merged tokens: full attention within a group
    in `full_layers`, within windows of `window` pixels elsewhere (transformers' get_vision_window_index)."""
    unit = tower.merge * tower.merge
    per_row = grid[0] * grid[1] * unit
    patches = rows * per_row
    conv = 2 * patches * tower.hidden * 3 * tower.temporal_patch * tower.patch ** 2
    linear = 2 * patches * (4 * tower.hidden ** 2 + 3 * tower.hidden * tower.intermediate)
    side = (tower.window or 0) // tower.patch // tower.merge or max(grid)
    heights = [min(side, grid[0] - i) for i in range(0, grid[0], side)]
    widths = [min(side, grid[1] - j) for j in range(0, grid[1], side)]
    windowed = sum((h * w * unit) ** 2 for h in heights for w in widths)
    attention = 0.0
    for layer in range(tower.layers):
        squares = per_row ** 2 if layer in tower.full_layers or not tower.window else windowed
        attention += 4 * rows * squares * tower.hidden
    return conv + tower.layers * linear + attention


def mlp(tokens: int, widths: tuple[int, ...]) -> float:
    """A stack of linear layers `widths[0] → widths[1] → …` over `tokens` rows (LLaVA's projector, Qwen's merger)."""
    return sum(2 * tokens * a * b for a, b in zip(widths, widths[1:]))


def llm_prefill(counts: list[int], llm: Llm) -> float:
    """Layer l over counts[l] tokens (q, k, v, o, the SwiGLU MLP, causal attention as counted), then the LM head on the
    last position only (`logits_to_keep=1`)."""
    kv = llm.kv_heads * llm.head_dim
    linear = 2 * llm.hidden ** 2 + 2 * llm.hidden * kv + 3 * llm.hidden * llm.intermediate
    return sum(2 * n * linear + 4 * n * n * llm.hidden for n in counts) + 2 * llm.hidden * llm.vocab


def llm_step(context: list[int], llm: Llm) -> float:
    """One generated token against a cache of context[l] tokens in layer l."""
    kv = llm.kv_heads * llm.head_dim
    linear = 2 * llm.hidden ** 2 + 2 * llm.hidden * kv + 3 * llm.hidden * llm.intermediate
    return sum(2 * linear + 4 * (c + 1) * llm.hidden for c in context) + 2 * llm.hidden * llm.vocab


def last_token_attention(n: int, llm: Llm) -> float:
    """FastV's ranking (harness.backbones.fastv.last_token_attention): q of the last token, k of all n, q·kᵀ."""
    kv = llm.kv_heads * llm.head_dim
    return 2 * llm.hidden ** 2 + 2 * n * llm.hidden * kv + 2 * n * llm.hidden
