"""FrameFusion's prefill (arXiv 2501.01986; the official thu-nics/FrameFusion `FrameFusion.forward` and its model
patches): merging of temporally adjacent similar visual tokens, then importance pruning, in the first LLM layers.

The decoder layers run one half at a time, because FrameFusion acts on the residual stream after attention and
before the MLP (and once on the input embeddings before layer 0); what layer i's attention sees is step i of the
budget:
- merge, while not finished: a visual token whose hidden state is at least `similarity` cosine-similar to the
  previous surviving token at its patch position (the same spatial position in an earlier frame) is marked; a run of
  marked tokens folds into the unmarked token before it, whose value becomes the plain mean of the run and itself
  (sizes are not tracked, as in the official code). If the marked share reaches the share the budget still allows,
  only that many of the most similar merge and nothing is pruned; if it is below `min_ratio`, merging ends here.
- prune, once, in the first layer after merging ended: the last prompt token's attention in that layer (mean over
  heads) ranks the visual tokens and the least attended go, so that the visual tokens averaged over the steps meet
  `cost`. The layer's own KV still holds every token; later layers see only the survivors.
Survivors keep their original positions. The official budget divides by a hard-coded 28 layers (Qwen2-7B's depth:
step i is what layer i's attention sees, the merge before layer 0 being step 0); here the LLM's own depth. Where
the official code raises because the budget can no longer be met (a shallow LLM), the prune keeps one token. The
separator after LLaVA-OV's video (image_newline) is not a patch position: never merged, never pruned (the official
LLaVA-Video patch gives its per-row newlines patch positions of their own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from harness.backbones.fastv import causal_mask, last_token_attention
from harness.core.records import LlmFuse


@dataclass
class FusionState:
    """The prefill's bookkeeping: which visual tokens survive, their patch positions and the merge history."""

    kept: list[int]  # original sequence index of each surviving visual token (one contiguous run from `start`)
    patches: torch.Tensor  # [len(kept)] patch position of each survivor
    start: int
    sparsities: list[float] = field(default_factory=list)  # share of tokens each merge step removed
    merged: bool = False  # merging finished
    pruned: bool = False


def prune_ratio(sparsities: list[float], cost: float, steps: int) -> float:
    """The share of the remaining visual tokens to prune now so that, if every remaining step keeps what is left, the
    mean visual fraction over `steps` steps is `cost` (official `_compute_pruning_ratio`); clipped to [0, 1]."""
    remaining, total = 1.0, 0.0
    for s in sparsities:
        remaining *= 1.0 - s
        total += remaining
    left = steps - len(sparsities)
    if left <= 0 or remaining <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - (steps * cost - total) / (left * remaining)))


def previous_same_patch(patches: torch.Tensor) -> torch.Tensor:
    """For each token, the index of the previous token with the same patch position (-1 for the first of each)."""
    previous = torch.full_like(patches, -1)
    last: dict[int, int] = {}
    for i, p in enumerate(patches.tolist()):
        previous[i] = last.get(p, -1)
        last[p] = i
    return previous


def merge_step(hidden: torch.Tensor, state: FusionState, fuse: LlmFuse,
               steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One merge step on the visual run of `hidden` [1, n, C]: (hidden with each run head set to its run's mean, the
    rows of it that survive)."""
    n, low, count = hidden.shape[1], state.start, len(state.kept)
    visual = hidden[0, low : low + count].float()
    previous = previous_same_patch(state.patches)
    unit = torch.nn.functional.normalize(visual, dim=-1)
    similarity = torch.full((count,), -2.0)
    has_previous = previous >= 0
    similarity[has_previous] = (unit[has_previous] * unit[previous[has_previous]]).sum(-1).cpu()
    marked = similarity >= fuse.similarity
    allowed = prune_ratio(state.sparsities, fuse.cost, steps)
    share = float(marked.sum()) / count
    if share < allowed:
        state.sparsities.append(share)
        state.merged = share < fuse.min_ratio
    else:  # the budget is met by merging alone: the most similar that fit, and no pruning after
        marked = torch.zeros(count, dtype=torch.bool)
        marked[torch.topk(similarity, int(allowed * count)).indices] = True
        state.merged = state.pruned = True
    # a marked token folds into the first unmarked token up its patch's chain (the head of its run)
    head = torch.arange(count)
    for i in range(count):
        if marked[i]:
            head[i] = head[int(previous[i])]
    survivors = (~marked).nonzero()[:, 0]
    head = head.to(visual.device)  # the bookkeeping lives on the CPU, the hidden states on the model's device
    sums = torch.zeros_like(visual).index_add_(0, head, visual)
    sizes = torch.bincount(head, minlength=count).clamp(min=1)
    hidden = hidden.clone()
    hidden[0, low : low + count] = (sums / sizes[:, None]).to(hidden.dtype)
    state.kept = [state.kept[int(i)] for i in survivors]
    state.patches = state.patches[survivors]
    return hidden, torch.cat([torch.arange(low), low + survivors, torch.arange(low + count, n)])


def prune_step(scores: torch.Tensor, state: FusionState, fuse: LlmFuse, steps: int, n: int) -> torch.Tensor:
    """The importance prune: rows of the sequence (length n) that survive."""
    count, low = len(state.kept), state.start
    keep = max(1, round(count * (1.0 - prune_ratio(state.sparsities, fuse.cost, steps))))
    top = torch.sort(torch.topk(scores[low : low + count], min(keep, count)).indices).values.cpu()
    state.kept = [state.kept[int(i)] for i in top]
    state.patches = state.patches[top]
    state.pruned = True
    return torch.cat([torch.arange(low), low + top, torch.arange(low + count, n)])


def prefill_fused(
    model: Any, embeds: torch.Tensor, positions: torch.Tensor, visual: range, patches: torch.Tensor, fuse: LlmFuse,
) -> tuple[torch.Tensor, Any, list[int]]:
    """FrameFusion prefill over `visual` (positions in `embeds` of the visual tokens, `patches` their patch positions).

    Returns (last-position logits [V], cache, original indices of the surviving visual tokens).
    """
    from transformers.cache_utils import DynamicCache

    lm = model.model.language_model
    layers = len(lm.layers)
    steps = layers  # step i: what layer i's attention sees (the merge after the last layer feeds no layer)
    dtype, device = embeds.dtype, embeds.device
    cache = DynamicCache(config=lm.config)
    state = FusionState(list(visual), patches.cpu(), visual.start)
    hidden = embeds

    def keep(rows: torch.Tensor) -> None:
        nonlocal hidden, positions
        rows = rows.to(device)
        hidden, positions = hidden[:, rows], positions[..., rows]

    if state.kept:
        hidden, rows = merge_step(hidden, state, fuse, steps)
        keep(rows)
    for index, layer in enumerate(lm.layers):
        scores = None
        if state.merged and not state.pruned and state.kept:
            scores = last_token_attention(model, index, hidden, positions)
        embeddings = lm.rotary_emb(hidden, positions)
        attended, _ = layer.self_attn(hidden_states=layer.input_layernorm(hidden),
                                      attention_mask=causal_mask(hidden.shape[1], dtype, device),
                                      position_ids=positions, past_key_values=cache, use_cache=True,
                                      position_embeddings=embeddings)
        hidden = hidden + attended
        if scores is not None:
            keep(prune_step(scores, state, fuse, steps, hidden.shape[1]))
        elif not state.merged and state.kept:
            hidden, rows = merge_step(hidden, state, fuse, steps)
            keep(rows)
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    logits = model.lm_head(lm.norm(hidden[:, -1:]))[0, -1]
    return logits, cache, state.kept

