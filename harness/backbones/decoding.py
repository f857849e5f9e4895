"""Generation shared by the backbones that splice visual tokens into their chat's input embeddings (LLaVA-OV,
Qwen2.5-VL, ViLAMP): one greedy loop with an explicit KV cache, whose only per-backbone difference is the
positions (sequential, or Qwen2.5-VL's M-RoPE), and optional in-LLM pruning (FastV).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from harness.backbones.base import Placement
from harness.backbones.fastv import llm_layers, prefill_pruned
from harness.backbones.framefusion import prefill_fused
from harness.core.records import Generation, GenerationConfig, LlmFuse, LlmPrune, Prompt, VisualSequence
from harness.hf.text import choice_token_ids
from harness.methods.hooks import HookUnavailable, require_hook


@dataclass(frozen=True, eq=False)
class PromptInputs:
    """A chat with its visual tokens spliced in, ready for the LLM."""

    embeds: torch.Tensor  # [1, n, C]
    visual: range  # positions in `embeds` of the visual tokens in-LLM pruning ranks (separators excluded)
    n_visual: int  # visual tokens entering the LLM, separators included (LLaVA-OV's trailing image_newline)
    n_text: int  # prompt tokens that are not visual
    positions: torch.Tensor | None = None  # explicit position ids (M-RoPE [3, 1, n]); None: sequential


def decode(
    model: Any, tokenizer: Any, stops: frozenset[int], inputs: PromptInputs, config: GenerationConfig,
    llm_prune: LlmPrune | LlmFuse | None, start: float, patches: torch.Tensor | None = None,
) -> Generation:
    """Greedy decoding: one prefill forward, then one forward per new token.

    `start` is when the caller began building the prompt, so prefill time includes the embeddings. With
    `config.choices` the answer is the one choice whose first token scores highest after the prompt. With
    `llm_prune` the prefill keeps only the top visual tokens from each stage's layer on (fastv.prefill_pruned), or
    fuses and prunes them in the first layers (an LlmFuse: framefusion.prefill_fused over the visual tokens' `patches`
    positions), and decode steps run the decoder layers directly, since the layers then hold caches of different
    lengths.
    """
    if config.do_sample:
        raise ValueError("the transformers backbones decode greedily only (do_sample=False)")
    if config.max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {config.max_new_tokens}")
    choices = choice_token_ids(tokenizer, config.choices) if config.choices else None
    embeds, positions = inputs.embeds, inputs.positions
    device, n = embeds.device, embeds.shape[1]
    if llm_prune is not None and positions is None:
        positions = torch.arange(n, device=device)[None]  # the pruned layers need positions spelled out
    next_position = n if positions is None else int(positions.max()) + 1
    kept: int | None = None

    def at(position: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return {} if position is None else {"position_ids": position}

    with torch.inference_mode():
        if llm_prune is None:
            out = model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1, **at(positions))
            logits, cache = out.logits[0, -1], out.past_key_values
        elif isinstance(llm_prune, LlmFuse):
            if patches is None or len(patches) != len(inputs.visual):
                raise ValueError("in-LLM fusion needs the patch position of every visual token")
            logits, cache, kept_rows = prefill_fused(model, embeds, positions, inputs.visual, patches, llm_prune)
            kept = len(kept_rows)
        else:
            logits, cache, kept_rows, _ = prefill_pruned(model, embeds, positions, inputs.visual, llm_prune)
            kept = len(kept_rows)
        if choices:
            tokens = [choices[int(logits[torch.tensor(choices, device=logits.device)].argmax())]]
            prefill_done = end = time.perf_counter()
        else:
            tokens = [int(logits.argmax())]  # int() syncs, so the timing is real on GPU too
            prefill_done = time.perf_counter()
            while len(tokens) < config.max_new_tokens and tokens[-1] not in stops:
                ids = torch.tensor([[tokens[-1]]], device=device)
                position = None if positions is None else torch.full(
                    (*positions.shape[:-1], 1), next_position + len(tokens) - 1, dtype=torch.long, device=device)
                if llm_prune is None:
                    out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1, **at(position))
                    logits, cache = out.logits[0, -1], out.past_key_values
                else:  # one query: no mask needed
                    logits = llm_layers(model, model.get_input_embeddings()(ids), position, cache, None)[0, -1]
                tokens.append(int(logits.argmax()))
            end = time.perf_counter()
    return Generation(
        text=tokenizer.decode(tokens, skip_special_tokens=True),
        visual_tokens=inputs.n_visual,
        text_tokens=inputs.n_text,
        generated_tokens=len(tokens),
        timings_s={"prefill": prefill_done - start, "decode": end - prefill_done},
        visual_tokens_after_llm_prune=None if kept is None else kept + inputs.n_visual - len(inputs.visual),
    )


class ChatBackbone:
    """`embed_text`, `prompt_embeds` and `generate` over a subclass's `_inputs(visual, prompt)` (its chat with
    the visual tokens spliced in). The subclass sets model, tokenizer, device, dtype, hidden_size, stop_ids, name."""

    name: str
    hooks: ClassVar[frozenset[str]]
    placement: ClassVar[Placement]
    separator_tokens: ClassVar[int] = 0  # tokens the backbone adds after a non-empty visual sequence
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    hidden_size: int
    stop_ids: frozenset[int]

    def _inputs(self, visual: VisualSequence, prompt: Prompt) -> PromptInputs:
        raise NotImplementedError

    def embed_text(self, text: str) -> torch.Tensor:
        """LLM input embeddings of `text` (no special tokens added): [n, C]."""
        return self._embed_ids(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_embeds(self, visual: VisualSequence, prompt: Prompt) -> tuple[torch.Tensor, int, int]:
        """The chat's input embeddings [1, n, C] with the visual sequence at the video placeholder, the visual
        tokens entering the LLM and the text tokens."""
        inputs = self._inputs(visual, prompt)
        return inputs.embeds, inputs.n_visual, inputs.n_text

    def generate(self, visual: VisualSequence, prompt: Prompt, config: GenerationConfig) -> Generation:
        """Greedy decoding of the chat with `visual` before the user text (see `decode`)."""
        start = time.perf_counter()
        patches = None
        if isinstance(visual.llm_prune, LlmFuse):
            require_hook(self, "llm_fuse", "in-LLM token fusion (FrameFusion)")
            if visual.rows is None or visual.source is None:
                raise HookUnavailable("in-LLM token fusion (FrameFusion) compares tokens at the same patch position "
                                      "across frames, and this visual sequence declares no encoded rows; reduce "
                                      "before the LLM only with a reducer that keeps or declares rows")
            patches = visual.rows % visual.source.tokens.shape[1]
        elif visual.llm_prune is not None:
            require_hook(self, "llm_prune", "in-LLM pruning (VisualSequence.llm_prune)")
        if self.placement == "grid" and (visual.rows is None or visual.source is None):
            raise HookUnavailable(
                f"{self.name} places each visual token at the (time, row, column) position of an encoded row, and "
                "this visual sequence declares no rows of an encoding; use a reducer that keeps or declares rows")
        return decode(self.model, self.tokenizer, self.stop_ids, self._inputs(visual, prompt), config,
                      visual.llm_prune, start, patches)

    def _visual_tokens(self, visual: VisualSequence) -> torch.Tensor:
        """The visual tokens on the model's device and dtype, checked against the LLM's width."""
        if visual.tokens.shape[1] != self.hidden_size:
            raise ValueError(f"visual tokens must be [L, {self.hidden_size}], got {list(visual.tokens.shape)}")
        return visual.tokens.to(self.device, self.dtype)

    def _splice(self, before: list[int], visual: torch.Tensor, after: list[int]) -> torch.Tensor:
        """Input embeddings [1, n, C] of `before` ids, the `visual` tokens, then `after` ids."""
        with torch.inference_mode():
            return torch.cat([self._embed_ids(before), visual, self._embed_ids(after)])[None]

    def _embed_ids(self, ids: list[int]) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.get_input_embeddings()(torch.tensor(ids, device=self.device))
