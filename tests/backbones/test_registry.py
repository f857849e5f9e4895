"""The BACKBONES registry holds classes whose hooks, placement, arguments and tokens per frame are known without
loading (or building) any weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.backbones import BACKBONES
from harness.core.config import ConfigError
from harness.core.records import LETTERS, Frames, GenerationConfig, Prompt, VisualSequence
from harness.methods.hooks import HOOKS

HUB = {"llava-ov": "llava-hf/llava-onevision-qwen2-7b-ov-hf", "llava-video": "llava-hf/LLaVA-Video-7B-Qwen2-hf",
       "qwen25vl": "Qwen/Qwen2.5-VL-7B-Instruct"}


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setenv("HARNESS_VILAMP", str(tmp_path / "no-vilamp"))
    return tmp_path


def test_every_entry_is_checkable_without_weights(empty_cache: Path) -> None:
    for name in BACKBONES:
        cls = BACKBONES.get(name)
        assert isinstance(cls, type), name
        assert isinstance(cls.hooks, frozenset) and cls.hooks <= set(HOOKS), name
        assert cls.placement == ("grid" if name == "qwen25vl" else "sequential"), name
        for method in ("load", "preflight", "tokens_per_frame_for"):
            assert callable(getattr(cls, method)), (name, method)
    assert not (empty_cache / "models").exists()


def test_tokens_per_frame_from_the_arguments_alone(empty_cache: Path) -> None:
    per_frame = BACKBONES.get
    assert per_frame("tiny").tokens_per_frame_for() == 16  # 64 px / 8 px patches = 8×8, pooled to 4×4
    assert per_frame("llava-ov").tokens_per_frame_for(tiny_seed=0) == 16
    # SigLIP so400m-patch14-384: 27×27 patches pooled bilinearly to ⌈27/2⌉² = 14×14
    assert per_frame("llava-ov").tokens_per_frame_for(checkpoint=HUB["llava-ov"], dtype="bfloat16") == 196
    assert per_frame("llava-video").tokens_per_frame_for(checkpoint=HUB["llava-video"]) == 196
    assert per_frame("qwen25vl").tokens_per_frame_for(tiny_seed=0) is None  # dynamic resolution
    assert per_frame("qwen25vl").tokens_per_frame_for(checkpoint=HUB["qwen25vl"]) is None
    assert per_frame("fixed-cost").tokens_per_frame_for() == 1
    assert per_frame("fixed-cost").tokens_per_frame_for(tokens_per_frame=3) == 3
    assert per_frame("vilamp").tokens_per_frame_for() == 196  # the official so400m tower, 27 → 14
    assert per_frame("vilamp-tiny").tokens_per_frame_for() == 16
    assert not (empty_cache / "models").exists()


HF_ARGS = ("checkpoint", "tiny_seed", "dtype", "device", "attn_implementation", "num_threads")
VALID = {"canary": ("checkpoint", "dtype", "device", "attn_implementation", "num_threads"),
         "tiny": HF_ARGS, "llava-ov": HF_ARGS, "llava-video": HF_ARGS, "qwen25vl": HF_ARGS,
         "vilamp": ("checkpoint", "clip", "dtype", "device"), "vilamp-tiny": ("seed", "device"),
         "fixed-cost": ("step_s", "per_frame_s", "name", "tokens_per_frame")}


@pytest.mark.parametrize("name", sorted(VALID))
def test_unknown_argument_names_the_backbone_the_key_and_the_valid_keys(name: str) -> None:
    assert sorted(VALID) == list(BACKBONES)
    with pytest.raises(ConfigError) as error:
        BACKBONES.get(name).preflight(devise="cpu")
    message = str(error.value)
    assert f"backbone {name!r}: unknown argument 'devise'" in message and "\n" not in message
    assert message.endswith(f"valid: {', '.join(VALID[name])}")
    assert ("did you mean 'device'" in message) == ("device" in VALID[name])


def test_preflight_rejects_bad_values_before_any_weights(empty_cache: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dtype 'fp8'"):
        BACKBONES.get("qwen25vl").preflight(tiny_seed=0, dtype="fp8")
    with pytest.raises(ConfigError, match="unknown dtype 'fp8'"):
        BACKBONES.get("vilamp").preflight(dtype="fp8")
    with pytest.raises(ConfigError, match="exactly one of"):
        BACKBONES.get("llava-video").preflight()
    for name, hub in HUB.items():  # offline (HF_HUB_OFFLINE=1) and not in the cache
        with pytest.raises(ConfigError, match="not in the local Hugging Face cache") as error:
            BACKBONES.get(name).preflight(checkpoint=hub, dtype="bfloat16")
        assert "\n" not in str(error.value) and f"hf download {hub}" in str(error.value)
    with pytest.raises(ConfigError, match="orange-sk/ViLAMP-llava-qwen_sig"):
        BACKBONES.get("vilamp").preflight()
    assert not (empty_cache / "models").exists()


def test_fixed_cost_answers_from_the_visual_tokens() -> None:
    backbone = BACKBONES.get("fixed-cost").load(step_s=0.0)
    pixels = np.full((3, 4, 4, 3), 7, np.uint8)
    encoded = backbone.encode_frames(Frames((0, 1, 2), (0.0, 0.5, 1.0), pixels))
    assert encoded.tokens.shape == (3, 1, 3) and encoded.timestamps_s == (0.0, 0.5, 1.0)
    generation = backbone.generate(VisualSequence.whole(encoded), Prompt("", "q"), GenerationConfig())
    assert generation.text == LETTERS[int(7 * 3 * 3) % 4] and generation.visual_tokens == 3
    assert backbone.hooks == frozenset() and backbone.placement == "sequential"
    assert torch.equal(VisualSequence.whole(encoded).tokens, encoded.flat)
