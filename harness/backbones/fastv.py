"""In-LLM visual token pruning (FastV, arXiv 2403.06764; PyramidDrop's stages, arXiv 2410.17247) on any decoder
whose layers take (hidden, mask, position_embeddings, cache) and whose rotary embedding maps positions to
(cos, sin): Qwen2 ([1, n] positions) and Qwen2.5-VL's M-RoPE ([3, 1, n]) alike. Kept tokens keep their original
positions."""

from __future__ import annotations

from typing import Any

import torch

from harness.core.records import LlmPrune


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
    from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb, repeat_kv

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
    model: Any, embeds: torch.Tensor, positions: torch.Tensor, visual: range, prune: LlmPrune,
) -> tuple[torch.Tensor, Any, list[int], torch.Tensor]:
    """Staged prefill (FastV: one stage; PyramidDrop: several): at each stage's layer the surviving visual tokens are
    ranked by the last prompt token's attention (mean over heads) at the stage's ranking layer and only the stage's
    count goes on (LlmPrune). Each layer's KV cache holds the tokens that layer saw.

    Returns (last-position logits [V], cache, kept visual indices into the sequence, kept positions).
    """
    from transformers.cache_utils import DynamicCache

    lm = model.model.language_model
    if prune.layers[-1] >= len(lm.layers):
        raise ValueError(f"in-LLM pruning at layer {prune.layers[-1]} must be below the LLM's {len(lm.layers)} layers")
    dtype, device = embeds.dtype, embeds.device
    cache = DynamicCache(config=lm.config)
    hidden, start, kept = embeds, 0, list(visual)  # kept: original sequence index of each surviving visual token

    def run(hidden: torch.Tensor, first: int, stop: int | None) -> torch.Tensor:
        return llm_layers(model, hidden, positions, cache, causal_mask(hidden.shape[1], dtype, device), first, stop)

    for layer, n_keep in zip(prune.layers, prune.counts(len(visual))):
        rank_at = layer - 1 if prune.rank == "previous" else layer
        hidden = run(hidden, start, rank_at)
        low, high = visual.start, visual.start + len(kept)  # the survivors stay one contiguous run
        scores = last_token_attention(model, rank_at, hidden, positions)[low:high]
        hidden = run(hidden, rank_at, layer)  # FastV: layer K − 1 itself still sees every token
        top = sorted(int(i) for i in torch.topk(scores, n_keep).indices)
        rows = torch.tensor([*range(low), *(low + i for i in top), *range(high, hidden.shape[1])], device=device)
        hidden, positions, kept, start = hidden[:, rows], positions[..., rows], [kept[i] for i in top], layer
    logits = run(hidden, start, None)[0, -1]
    return logits, cache, kept, positions
