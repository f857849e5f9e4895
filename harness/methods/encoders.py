"""Image–text encoders for query-aware frame selection (ViLAMP's DKS, top-k, AKS, BOLT...).

An `ImageTextEncoder` embeds frames and a query into one space; selectors compare them by cosine.
`tiny-clip` is a real transformers `CLIPModel` with tiny random weights (built once, seeded, saved with
`save_pretrained` and loaded back with `from_pretrained`, like the tiny backbone); `canary-clip` is a small CLIP
trained here on the needle task and shipped in the repo (issue 13), so relevance follows the needle; `clip-vit-b32`
is OpenAI's CLIP ViT-B/32, the encoder ViLAMP's official selector uses (notes/vilamp.md §1.2), loaded from disk only.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from tokenizers.processors import TemplateProcessing

from harness.core.config import ConfigError
from harness.core.paths import cache_dir, canary_weights
from harness.core.records import Frames
from harness.core.registry import Registry
from harness.hf.checkpoints import save_all, seeded, tiny_checkpoint
from harness.hf.loading import resolve_dtype
from harness.hf.text import ENDOFTEXT, IM_START, tiny_tokenizer

if TYPE_CHECKING:  # transformers loads on first use: the spec check needs only the class attributes
    from transformers import CLIPImageProcessor, CLIPModel

CHUNK = 64  # frames per encoder forward: bounds activation memory on 10K-frame videos


class ImageTextEncoder(Protocol):
    name: str
    dim: int

    def embed_images(self, frames: Frames) -> torch.Tensor:
        """Projected image embeddings [N, D] (not normalised), computed in chunks of frames."""
        ...

    def embed_text(self, text: str) -> torch.Tensor:
        """Projected text embedding [D] (not normalised), truncated to the text tower's length."""
        ...


class CLIPEncoder:
    """The ImageTextEncoder protocol over a transformers `CLIPModel` + its image processor and tokenizer."""

    def __init__(self, name: str, model: CLIPModel, image_processor: CLIPImageProcessor, tokenizer,
                 chunk: int = CHUNK) -> None:
        self.name = name
        self.model = model.eval()
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.chunk = chunk
        self.dim: int = model.config.projection_dim
        self.max_text_tokens: int = model.config.text_config.max_position_embeddings  # CLIP: 77

    @property
    def device(self) -> torch.device:
        return self.model.device

    def embed_images(self, frames: Frames) -> torch.Tensor:
        out = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.chunk):
                batch = self.image_processor(images=channels_first(frames.pixels[start : start + self.chunk]),
                                             return_tensors="pt")
                values = batch["pixel_values"].to(self.device, self.model.dtype)
                out.append(self.model.get_image_features(pixel_values=values).pooler_output.float())
        if not out:
            return torch.zeros(0, self.dim)
        return torch.cat(out).cpu()

    def embed_text(self, text: str) -> torch.Tensor:
        with torch.inference_mode():
            batch = self.tokenizer([text], truncation=True, max_length=self.max_text_tokens, return_tensors="pt")
            ids = batch["input_ids"].to(self.device)
            mask = batch["attention_mask"].to(self.device)
            return self.model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output[0].float().cpu()


def channels_first(pixels: np.ndarray) -> torch.Tensor:
    """[T, H, W, 3] uint8 → [T, 3, H, W]: one batched tensor, which transformers' image processors transform
    several times faster than a list of arrays."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)


# ---------------------------------------------------------------- tiny-clip

TINY_CLIP_FORMAT = 1  # bump when the config or tokenizer below changes, so a stale cache is not reused
TINY_CLIP_IMAGE = 32


def build_tiny_clip(seed: int = 0) -> tuple[CLIPModel, CLIPImageProcessor, object]:
    """A seeded tiny CLIP: 32 px images, 8 px patches, 2-layer towers, 32-d joint space."""
    return small_clip(tiny_tokenizer(), seed=seed, image_size=TINY_CLIP_IMAGE, patch_size=8, width=32, heads=2)


def small_clip(tokenizer, *, seed: int, image_size: int, patch_size: int, width: int, heads: int,
               layers: int = 2) -> tuple[CLIPModel, CLIPImageProcessor, object]:
    """A seeded small `CLIPModel` (both towers `width` wide, joint space `width`-d) over `tokenizer`, with its image
    processor; the tokenizer is framed in place like CLIP's "<|startoftext|> text <|endoftext|>"."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    # The text tower pools at the EOS position (an EOS id of 2 would select transformers' legacy argmax pooling,
    # hence <|endoftext|>).
    bos, eos = tokenizer.convert_tokens_to_ids(IM_START), tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{IM_START} $A {ENDOFTEXT}", special_tokens=[(IM_START, bos), (ENDOFTEXT, eos)])
    tokenizer.bos_token, tokenizer.eos_token = IM_START, ENDOFTEXT
    tower = dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers, num_attention_heads=heads)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=77, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=tokenizer.pad_token_id, **tower),
        vision_config=dict(image_size=image_size, patch_size=patch_size, **tower),
        projection_dim=width,
    )
    with seeded(seed):
        model = CLIPModel(config)
    processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                   crop_size={"height": image_size, "width": image_size})
    return model.eval(), processor, tokenizer


def load_clip_dir(name: str, directory: Path, dtype: str = "float32", device: str = "cpu") -> CLIPEncoder:
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(directory, dtype=resolve_dtype(dtype)).to(device)
    return CLIPEncoder(name, model, AutoImageProcessor.from_pretrained(directory),
                       AutoTokenizer.from_pretrained(directory))


def load_tiny_clip(*, seed: int = 0, device: str = "cpu") -> CLIPEncoder:
    directory = tiny_checkpoint("clip", TINY_CLIP_FORMAT, seed,
                                lambda staging: save_all(staging, *build_tiny_clip(seed)))
    return load_clip_dir("tiny-clip", directory, device=device)


# ---------------------------------------------------------------- clip-vit-b32

CLIP_B32_ID = "openai/clip-vit-base-patch32"


def clip_b32_dir(path: str | None = None) -> Path:
    """Where the OpenAI CLIP ViT-B/32 weights are expected: `path`, $HARNESS_CLIP_B32 or the harness cache."""
    return Path(path or os.environ.get("HARNESS_CLIP_B32") or cache_dir() / "models" / "clip-vit-base-patch32")


def check_clip_b32(path: str | None = None) -> Path:
    directory = clip_b32_dir(path)
    if not (directory / "config.json").is_file():
        # Offline by design: no hub download at run time.
        raise ConfigError(f"clip-vit-b32: no checkpoint at {directory}; download {CLIP_B32_ID} there "
                          f"(huggingface-cli download {CLIP_B32_ID} --local-dir {directory}) or set HARNESS_CLIP_B32")
    return directory


def load_clip_b32(*, path: str | None = None, dtype: str = "float32", device: str = "cpu") -> CLIPEncoder:
    return load_clip_dir("clip-vit-b32", check_clip_b32(path), dtype, device)


# ---------------------------------------------------------------- canary-clip

CANARY_CLIP = canary_weights("clip")  # trained here on the needle task (harness/canary/clip.py, issue 13)


def check_canary_clip() -> Path:
    if not (CANARY_CLIP / "config.json").is_file():
        raise ConfigError(f"canary-clip: no checkpoint at {CANARY_CLIP}; run `make canary` to train it")
    return CANARY_CLIP


def load_canary_clip(*, dtype: str = "float32", device: str = "cpu") -> CLIPEncoder:
    return load_clip_dir("canary-clip", check_canary_clip(), dtype, device)


ENCODERS: Registry = Registry("image-text encoder")
ENCODERS.register("tiny-clip", load_tiny_clip)
ENCODERS.register("clip-vit-b32", load_clip_b32)
ENCODERS.register("canary-clip", load_canary_clip)


# What each encoder needs on disk, checked in the driver before a run (the tiny CLIP is built on first use).
_AVAILABLE = {"tiny-clip": lambda: None, "clip-vit-b32": check_clip_b32, "canary-clip": check_canary_clip}


def check_encoder(name: str, on_disk: bool = False) -> None:
    """ConfigError (one line) for an unknown encoder name, or (`on_disk`) for weights that are not there."""
    if name not in ENCODERS:
        raise ConfigError(ENCODERS.unknown_message(name))
    if on_disk:
        _AVAILABLE[name]()


@lru_cache(maxsize=4)  # one encoder per worker process, shared by every sample and every selector
def load_encoder(name: str) -> ImageTextEncoder:
    return ENCODERS.get(name)()
