"""In-LLM visual token pruning (FastV, arXiv 2403.06764) on any decoder whose layers take (hidden, mask,
position_embeddings, cache) and whose rotary embedding maps positions to (cos, sin): Qwen2 ([1, n] positions)
and Qwen2.5-VL's M-RoPE ([3, 1, n]) alike. Kept tokens keep their original positions."""

from __future__ import annotations

import math
from typing import Any

import torch
from transformers.cache_utils import DynamicCache
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb, repeat_kv


def causal_mask(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive causal mask [1, 1, n, n]; explicit so eager and SDPA attention agree."""
    blocked = torch.ones(n, n, dtype=torch.bool, device=device).triu(1)
    return torch.zeros(n, n, dtype=dtype, device=device).masked_fill(blocked, torch.finfo(dtype).min)[None, None]


def llm_layers(
    model: Any, hidden: torch.Tensor, positions: torch.Tensor, cache: Any, mask: torch.Tensor | None,
    start: int = 0, stop: int | None = None,
) -> torch.Tensor:
    """Decoder layers [start, stop) of `model`'s LLM on `hidden`; with stop=None also the final norm and the LM head
    (last position only)."""
    lm = model.model.language_model
    embeddings = lm.rotary_emb(hidden, positions)
    for layer in lm.layers[start:stop]:
        hidden = layer(hidden, attention_mask=mask, position_ids=positions, past_key_values=cache,
                       use_cache=True, position_embeddings=embeddings)
    if stop is not None:
        return hidden
    return model.lm_head(lm.norm(hidden[:, -1:]))  # only the last position is ever read: [1, 1, V]


def last_token_attention(model: Any, layer_index: int, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """softmax(q_last · Kᵀ) of LLM layer `layer_index` on its input `hidden`, averaged over heads: [n].

    Recomputed for the last query only (eager math for this one layer), since SDPA returns no weights.
    """
    lm = model.model.language_model
    layer = lm.layers[layer_index]
    attn = layer.self_attn
    x = layer.input_layernorm(hidden)
    q = attn.q_proj(x[:, -1:]).view(1, 1, -1, attn.head_dim).transpose(1, 2)
    k = attn.k_proj(x).view(1, x.shape[1], -1, attn.head_dim).transpose(1, 2)
    cos, sin = lm.rotary_emb(hidden, positions)
    q = apply_rotary_pos_emb(q, q, cos[:, -1:], sin[:, -1:])[0]
    k = apply_rotary_pos_emb(k, k, cos, sin)[0]
    k = repeat_kv(k, attn.num_key_value_groups)
    weights = torch.softmax((q @ k.transpose(-1, -2)).float() * attn.scaling, dim=-1)  # [1, H, 1, n]
    return weights.mean(dim=1)[0, 0]


def prefill_pruned(
    model: Any, embeds: torch.Tensor, positions: torch.Tensor, visual: range, layer: int, keep_ratio: float,
) -> tuple[torch.Tensor, Any, list[int], torch.Tensor]:
    """FastV prefill: layers < K see every token; from layer K on only the top ceil(keep_ratio·N) visual tokens
    by the last prompt token's attention at layer K - 1 (mean over heads) remain.

    Returns (last-position logits [V], cache, kept visual indices into the sequence, kept positions).
    """
    lm = model.model.language_model
    if layer >= len(lm.layers):
        raise ValueError(f"FastV layer K={layer} must be below the LLM's {len(lm.layers)} layers")
    n = embeds.shape[1]
    dtype, device = embeds.dtype, embeds.device
    cache = DynamicCache(config=lm.config)
    hidden = llm_layers(model, embeds, positions, cache, causal_mask(n, dtype, device), stop=layer - 1)
    scores = last_token_attention(model, layer - 1, hidden, positions)[visual.start : visual.stop]
    hidden = llm_layers(model, hidden, positions, cache, causal_mask(n, dtype, device), start=layer - 1, stop=layer)
    n_keep = min(len(visual), math.ceil(keep_ratio * len(visual)))
    kept = sorted(visual.start + int(i) for i in torch.topk(scores, n_keep).indices)
    rows = torch.tensor([*range(visual.start), *kept, *range(visual.stop, n)], device=device)
    hidden, positions = hidden[:, rows], positions[..., rows]
    logits = llm_layers(model, hidden, positions, cache, causal_mask(len(rows), dtype, device), start=layer)[0, -1]
    return logits, cache, kept, positions
