"""FastV: the top-attention visual tokens survive layer K, and the output equals a masked reference run."""

import math

import numpy as np
import pytest
import torch

from baselines.fastv import FastV
from harness.backbones import BACKBONES
from harness.backbones.fastv import prefill_pruned
from harness.core.records import EncodedVideo, Frames, GenerationConfig, LlmPrune, Prompt, VisualSequence

PROMPT = Prompt(system="", user="What color is the car?\nA. red\nB. blue\nC. green\nD. white")


def load_tiny():
    return BACKBONES.get("tiny").load()


def pruned_prefill(backbone, embeds, span, prune):
    """The LLaVA-OV FastV prefill (sequential positions): (logits, cache, kept visual positions)."""
    positions = torch.arange(embeds.shape[1])[None]
    logits, cache, kept, _ = prefill_pruned(backbone.model, embeds, positions, span, prune)
    return logits, cache, kept


@pytest.fixture(scope="module")
def setup():
    backbone = load_tiny()
    pixels = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    frames = Frames(tuple(range(4)), (0.0, 1.0, 2.0, 3.0), pixels)
    inputs = backbone._inputs(VisualSequence.whole(backbone.encode_frames(frames)), PROMPT)
    return backbone, inputs.embeds, inputs.visual


def test_keeps_exactly_the_top_attention_tokens(setup):
    backbone, embeds, span = setup
    _, _, kept = pruned_prefill(backbone, embeds, span, LlmPrune.fastv(1, 0.5))
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
    prune = LlmPrune.fastv(1, 0.5)
    logits, _, kept = pruned_prefill(backbone, embeds, span, prune)
    reference = masked_reference(backbone, embeds, span, kept, prune.layers[0], steps=6)
    assert torch.allclose(logits, reference[0], atol=1e-4)
    # a different kept set gives a different output: the comparison can fail
    other = masked_reference(backbone, embeds, span, sorted(set(span) - set(kept)), prune.layers[0], steps=1)
    assert not torch.allclose(logits, other[0], atol=1e-4)
    visual = embeds[0, span.start : span.stop]  # the visual tokens generate() puts back at the same place
    generation = backbone.generate(VisualSequence(visual, llm_prune=prune), PROMPT, GenerationConfig(max_new_tokens=6))
    expected = [int(step.argmax()) for step in reference][: generation.generated_tokens]
    assert backbone.tokenizer.decode(expected, skip_special_tokens=True) == generation.text
    assert generation.visual_tokens_after_llm_prune == math.ceil(0.5 * len(span)) + 1
    assert generation.visual_tokens == len(span) + 1


def test_keep_all_equals_plain_generation(setup):
    backbone, _, _ = setup
    tokens = torch.randn(32, backbone.hidden_size, generator=torch.Generator().manual_seed(0))
    config = GenerationConfig(max_new_tokens=6)
    plain = backbone.generate(VisualSequence(tokens), PROMPT, config)
    kept = backbone.generate(VisualSequence(tokens, llm_prune=LlmPrune.fastv(1, 1.0)), PROMPT, config)
    assert plain.text == kept.text and kept.visual_tokens_after_llm_prune == plain.visual_tokens


def test_layer_beyond_the_llm_fails_clearly(setup):
    backbone, embeds, span = setup
    with pytest.raises(ValueError, match="must be below the LLM's 2 layers"):
        pruned_prefill(backbone, embeds, span, LlmPrune.fastv(2, 0.5))


def test_defaults_and_the_request_in_the_sequence():
    encoded = EncodedVideo(torch.zeros(2, 4, 8), (0.0, 1.0))
    visual = FastV().reduce(encoded, None)
    assert visual.llm_prune == LlmPrune.fastv(2, 0.5)  # K=2, R=50% (FastV README)
    assert torch.equal(visual.tokens, encoded.flat) and visual.rows.tolist() == list(range(8))
    assert FastV.requires == {"llm_prune"}  # the preflight refuses a backbone without it (tests/model/test_preflight.py)
    with pytest.raises(ValueError, match="keep_ratio"):
        FastV(ratio=1.0)
