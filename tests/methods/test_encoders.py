"""Image–text encoders: the tiny CLIP is a real cached transformers checkpoint; ViT-B/32 fails clearly offline."""

import numpy as np
import pytest
import torch

from harness.core.config import ConfigError
from harness.core.paths import cache_dir
from harness.core.records import Frames
from harness.core.registry import UnknownNameError
from harness.methods.encoders import ENCODERS, CLIPEncoder


def frames(n: int, seed: int = 0) -> Frames:
    pixels = np.random.default_rng(seed).integers(0, 256, (n, 40, 56, 3), dtype=np.uint8)
    return Frames(tuple(range(n)), tuple(float(i) for i in range(n)), pixels)


@pytest.fixture(scope="module")
def tiny_clip() -> CLIPEncoder:
    return ENCODERS.get("tiny-clip")()


def test_tiny_clip_is_cached_and_reloads_identically(tiny_clip):
    assert list(cache_dir().glob("models/tiny-clip-v*-seed0/model.safetensors"))
    again = ENCODERS.get("tiny-clip")()
    f = frames(5)
    assert torch.equal(tiny_clip.embed_images(f), again.embed_images(f))
    other_seed = ENCODERS.get("tiny-clip")(seed=1)
    assert not torch.allclose(tiny_clip.embed_images(f), other_seed.embed_images(f))


def test_embeddings_shapes_and_chunking(tiny_clip):
    f = frames(11)
    whole = tiny_clip.embed_images(f)
    assert whole.shape == (11, tiny_clip.dim) and whole.dtype == torch.float32
    chunked = CLIPEncoder("x", tiny_clip.model, tiny_clip.image_processor, tiny_clip.tokenizer, chunk=3)
    assert torch.allclose(chunked.embed_images(f), whole, atol=1e-5)
    assert tiny_clip.embed_images(frames(0)).shape == (0, tiny_clip.dim)


def test_text_embedding_depends_on_the_text_and_truncates(tiny_clip):
    a, b = tiny_clip.embed_text("What color is the car?"), tiny_clip.embed_text("How many people appear?")
    assert a.shape == (tiny_clip.dim,) and not torch.allclose(a, b)
    ids = tiny_clip.tokenizer("the car")["input_ids"]
    assert ids[-1] == tiny_clip.model.config.text_config.eos_token_id  # the text tower pools at EOS
    assert tiny_clip.embed_text("word " * 500).shape == (tiny_clip.dim,)  # cut to 77 tokens, no error


def test_clip_b32_missing_offline_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        ENCODERS.get("clip-vit-b32")(path=str(tmp_path / "nope"))
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "openai/clip-vit-base-patch32" in message and "nope" in message
    with pytest.raises(UnknownNameError, match="tiny-clip"):
        ENCODERS.get("tiny-clp")
