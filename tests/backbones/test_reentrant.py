"""A backbone holds no per-sample state: one instance serving two interleaved samples (encode A, encode B,
generate B, generate A) gives each the answer it gives alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.backbones import BACKBONES
from harness.core.records import EncodedVideo, Frames, Generation, GenerationConfig, LlmPrune, Prompt, VisualSequence

PROMPT = Prompt(system="", user="What happens in the video?\nA. one\nB. two\nC. three\nD. four",
                assistant_prefix="Best Option: (")
CONFIG = GenerationConfig(max_new_tokens=8)


def clip(n: int, seconds_apart: float, size: tuple[int, int], seed: int) -> Frames:
    pixels = np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)
    return Frames(tuple(range(n)), tuple(i * seconds_apart for i in range(n)), pixels)


# Different lengths, spacing and frame sizes: for Qwen2.5-VL a different grid and different M-RoPE times.
A, B = clip(8, 1.0, (90, 160), seed=1), clip(6, 4.0, (64, 64), seed=2)


def sequences(encoded: EncodedVideo) -> list[VisualSequence]:
    """The visual sequences a sample may hand generate: whole, a selected subset, FastV-pruned in the LLM."""
    return [VisualSequence.whole(encoded), VisualSequence.select(encoded, torch.arange(0, encoded.flat.shape[0], 3)),
            VisualSequence.whole(encoded, LlmPrune.fastv(1, 0.5))]


def answers(backbone, encoded: EncodedVideo) -> list[Generation]:
    return [backbone.generate(visual, PROMPT, CONFIG) for visual in sequences(encoded)]


def same(a: Generation, b: Generation) -> bool:
    return (a.text, a.visual_tokens, a.text_tokens, a.generated_tokens, a.visual_tokens_after_llm_prune) == \
        (b.text, b.visual_tokens, b.text_tokens, b.generated_tokens, b.visual_tokens_after_llm_prune)


@pytest.mark.parametrize("name, args", [("qwen25vl", {"tiny_seed": 0}), ("tiny", {})])
def test_interleaved_samples_get_the_answers_they_get_alone(name: str, args: dict) -> None:
    cls = BACKBONES.get(name)
    alone_a = answers(cls.load(**args), cls.load(**args).encode_frames(A))
    alone_b = answers(cls.load(**args), cls.load(**args).encode_frames(B))
    shared = cls.load(**args)
    encoded_a = shared.encode_frames(A)
    encoded_b = shared.encode_frames(B)
    interleaved_b = answers(shared, encoded_b)
    interleaved_a = answers(shared, encoded_a)
    assert all(same(x, y) for x, y in zip(interleaved_a, alone_a, strict=True))
    assert all(same(x, y) for x, y in zip(interleaved_b, alone_b, strict=True))
    assert alone_a[0].text != alone_b[0].text  # the two samples' answers differ, so a mix-up would show
    # what generate reads for A is A's own: its tokens and, on the grid backbone, its positions
    for visual in sequences(encoded_a):
        inputs = shared._inputs(visual, PROMPT)
        fresh = cls.load(**args)._inputs(visual, PROMPT)
        assert torch.equal(inputs.embeds, fresh.embeds)
        assert (inputs.positions is None and fresh.positions is None) or torch.equal(inputs.positions,
                                                                                    fresh.positions)
