"""FastV: the top-attention visual tokens survive layer K, and the output equals a masked reference run."""

import math

import numpy as np
import pytest
import torch

from baselines.fastv import FastV
from harness.backbones import HookUnavailable, LlmPrune
from harness.backbones.tiny import load_tiny
from harness.core.records import Frames, GenerationConfig, Prompt

PROMPT = Prompt(system="", user="What color is the car?\nA. red\nB. blue\nC. green\nD. white")


@pytest.fixture(scope="module")
def setup():
    backbone = load_tiny()
    pixels = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    frames = Frames(tuple(range(4)), (0.0, 1.0, 2.0, 3.0), pixels)
    visual = backbone.encode_frames(frames).reshape(-1, backbone.hidden_size)
    embeds, at, n_visual, _ = backbone._prompt(visual, PROMPT)
    return backbone, embeds, range(at, at + n_visual - 1)


def test_keeps_exactly_the_top_attention_tokens(setup):
    backbone, embeds, span = setup
    _, _, kept = backbone.prefill_pruned(embeds, span, LlmPrune(layer=1, keep_ratio=0.5))
    # reference: eager attention weights of layer K-1 = 0, last query, mean over heads
    eager = load_tiny().model
    eager.set_attn_implementation("eager")
    with torch.inference_mode():
        attentions = eager(inputs_embeds=embeds, output_attentions=True).attentions
    scores = attentions[0][0, :, -1, span.start : span.stop].mean(0)
    n_keep = math.ceil(0.5 * len(span))
    assert kept == sorted(span.start + int(i) for i in torch.topk(scores, n_keep).indices)


def masked_reference(backbone, embeds, span, kept, layer, steps):
    """Greedy tokens of the unmodified model, with the pruned visual columns masked out from `layer` on."""
    n = embeds.shape[1]
    pruned = torch.tensor(sorted(set(span) - set(kept)))
    model = backbone.model
    layers = model.model.language_model.layers

    def mask_hook(_module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        q = hidden.shape[1]
        kv = (n if q > 1 else n + mask_hook.step)
        mask = torch.zeros(1, 1, q, kv)
        if q > 1:
            mask = mask.masked_fill(torch.ones(q, kv, dtype=torch.bool).triu(1), torch.finfo(mask.dtype).min)
        mask[..., pruned] = torch.finfo(mask.dtype).min
        kwargs["attention_mask"] = mask
        return args, kwargs

    mask_hook.step = 0
    handles = [layer_.register_forward_pre_hook(mask_hook, with_kwargs=True) for layer_ in layers[layer:]]
    try:
        with torch.inference_mode():
            out = model(inputs_embeds=embeds, use_cache=True)
            logits = [out.logits[0, -1]]
            cache = out.past_key_values
            for _ in range(steps - 1):
                mask_hook.step += 1
                token = torch.tensor([[int(logits[-1].argmax())]])
                out = model(input_ids=token, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                logits.append(out.logits[0, -1])
    finally:
        for handle in handles:
            handle.remove()
    return logits


def test_output_equals_masked_reference_run(setup):
    backbone, embeds, span = setup
    prune = LlmPrune(layer=1, keep_ratio=0.5)
    logits, _, kept = backbone.prefill_pruned(embeds, span, prune)
    reference = masked_reference(backbone, embeds, span, kept, prune.layer, steps=6)
    assert torch.allclose(logits, reference[0], atol=1e-4)
    # a different kept set gives a different output: the comparison can fail
    other = masked_reference(backbone, embeds, span, sorted(set(span) - set(kept)), prune.layer, steps=1)
    assert not torch.allclose(logits, other[0], atol=1e-4)
    visual = embeds[0, span.start : span.stop]  # the visual tokens generate() puts back at the same place
    generation = backbone.generate(visual, PROMPT, GenerationConfig(max_new_tokens=6), llm_prune=prune)
    expected = [int(step.argmax()) for step in reference][: generation.generated_tokens]
    assert backbone.tokenizer.decode(expected, skip_special_tokens=True) == generation.text
    assert generation.visual_tokens_after_llm_prune == math.ceil(0.5 * len(span)) + 1
    assert generation.visual_tokens == len(span) + 1


def test_keep_all_equals_plain_generation(setup):
    backbone, _, _ = setup
    tokens = torch.randn(32, backbone.hidden_size, generator=torch.Generator().manual_seed(0))
    config = GenerationConfig(max_new_tokens=6)
    plain = backbone.generate(tokens, PROMPT, config)
    kept = backbone.generate(tokens, PROMPT, config, llm_prune=LlmPrune(layer=1, keep_ratio=1.0))
    assert plain.text == kept.text and kept.visual_tokens_after_llm_prune == plain.visual_tokens


def test_layer_beyond_the_llm_fails_clearly(setup):
    backbone, embeds, span = setup
    with pytest.raises(ValueError, match="must be below the LLM's 2 layers"):
        backbone.prefill_pruned(embeds, span, LlmPrune(layer=2, keep_ratio=0.5))


def test_defaults_and_missing_hook():
    assert FastV().llm_prune == LlmPrune(layer=2, keep_ratio=0.5)  # K=2, R=50% (FastV README)

    class Bare:
        name, hooks = "bare", frozenset({"embed_text"})

    class Ctx:
        backbone = Bare()

    with pytest.raises(HookUnavailable, match="FastV needs the backbone hook 'llm_prune'.*offers: embed_text"):
        FastV().reduce(torch.zeros(1, 4, 8), Ctx())
    with pytest.raises(ValueError, match="keep_ratio"):
        FastV(ratio=1.0)
