"""The tiny LLaVA-OneVision backbone (`tiny`: LLaVA-OV with tiny_seed=0): offline build, from_pretrained round trip,
official video path, generation, preflight."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoProcessor, LlavaOnevisionForConditionalGeneration

from harness.backbones import BACKBONES
from harness.backbones.llava_ov import TINY_IMAGE_SIZE, LlavaOvBackbone, TinyBackbone, build_tiny_model
from harness.core.config import ConfigError
from harness.core.records import EncodedVideo, Frames, GenerationConfig, Prompt, VisualSequence
from harness.hf.checkpoints import save_all, save_atomically, tiny_checkpoint
from harness.hf.text import ENDOFTEXT, IM_END, IM_START, IMAGE, VIDEO

PROMPT = Prompt(
    system="",
    user="What is the man doing?\nA. cooking\nB. riding\nC. reading\nD. playing\nAnswer with the option's letter.",
    assistant_prefix="Best Option: (",
)


def make_frames(n: int, height: int = 96, width: int = 128, seed: int = 0) -> Frames:
    pixels = np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)
    return Frames(indices=tuple(range(n)), timestamps_s=tuple(float(i) for i in range(n)), pixels=pixels)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # module scope: the checkpoint builds once here and HARNESS_CACHE is restored for the other test files
    root = tmp_path_factory.mktemp("harness-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def backbone(cache: Path) -> TinyBackbone:
    return TinyBackbone.load()  # builds the default checkpoint in the temporary cache


@pytest.fixture(scope="module")
def checkpoint(backbone: TinyBackbone, cache: Path) -> Path:
    return cache / "models" / "tiny-llava-ov-v1-seed0"


@pytest.fixture(scope="module")
def frames16(backbone: TinyBackbone) -> EncodedVideo:
    return backbone.encode_frames(make_frames(16))


def test_registry_tiny_is_llava_ov_on_the_seed_0_tiny_checkpoint(backbone: TinyBackbone, checkpoint: Path) -> None:
    assert BACKBONES.get("tiny") is TinyBackbone and issubclass(TinyBackbone, LlavaOvBackbone)
    assert backbone.model.name_or_path == str(checkpoint) == str(LlavaOvBackbone.tiny_checkpoint(0))
    assert TinyBackbone.hooks == LlavaOvBackbone.hooks and "vision_features" in backbone.hooks
    assert backbone.name == "tiny" and TinyBackbone.placement == "sequential"


def test_default_checkpoint_is_built_in_cache(checkpoint: Path) -> None:
    names = {p.name for p in checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= names
    assert not [p for p in checkpoint.parent.iterdir() if ".tmp-" in p.name]  # no staging left behind


def test_from_pretrained_round_trip_is_exact(checkpoint: Path) -> None:
    loaded, info = LlavaOnevisionForConditionalGeneration.from_pretrained(checkpoint, output_loading_info=True)
    assert all(not problems for problems in info.values()), info
    built, _ = build_tiny_model(seed=0)
    expected, actual = built.state_dict(), loaded.state_dict()
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_same_seed_same_checkpoint_other_seed_differs(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))  # a second cache: the same seed must rebuild identically
    again = LlavaOvBackbone.tiny_checkpoint(0)
    assert again == tmp_path / "models" / checkpoint.name
    a = load_file(again / "model.safetensors")
    b = load_file(checkpoint / "model.safetensors")
    c = load_file(LlavaOvBackbone.tiny_checkpoint(1) / "model.safetensors")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert (again / "tokenizer.json").read_text() == (checkpoint / "tokenizer.json").read_text()


def test_build_refuses_to_overwrite(checkpoint: Path) -> None:
    with pytest.raises(FileExistsError):
        save_atomically(checkpoint, lambda staging: save_all(staging, *build_tiny_model(0)))


def test_concurrent_first_use_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    builds: list[Path] = []

    def slow_write(staging: Path) -> None:
        builds.append(staging)
        time.sleep(0.2)  # widen the race window
        save_all(staging, *build_tiny_model(0))

    target = tmp_path / "models" / "tiny-llava-ov-v1-seed0"
    errors: list[BaseException] = []

    def use() -> None:
        try:
            assert tiny_checkpoint("llava-ov", 1, 0, slow_write) == target
        except BaseException as error:  # surfaced by the assert below
            errors.append(error)

    threads = [threading.Thread(target=use) for _ in range(2)]  # flock excludes separate open files in one process
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(builds) == 1
    assert (target / "model.safetensors").is_file()
    assert not [p for p in target.parent.iterdir() if ".tmp-" in p.name]


def test_tokens_per_frame_follows_config(backbone: TinyBackbone) -> None:
    vision = backbone.model.config.vision_config
    grid = vision.image_size // vision.patch_size
    assert backbone.tokens_per_frame == math.ceil(grid / 2) ** 2 == 16
    assert TinyBackbone.tokens_per_frame_for() == LlavaOvBackbone.tokens_per_frame_for(tiny_seed=3) == 16
    assert backbone.hidden_size == backbone.model.config.text_config.hidden_size == 64


def test_encode_frames_shape_and_frame_independence(backbone: TinyBackbone) -> None:
    encoded = backbone.encode_frames(make_frames(4))
    tokens = encoded.tokens
    assert tokens.shape == (4, backbone.tokens_per_frame, backbone.hidden_size)
    assert (encoded.frames_per_row, encoded.grid, encoded.timestamps_s) == (1, None, (0.0, 1.0, 2.0, 3.0))
    assert torch.isfinite(tokens).all()
    # frames are encoded independently, so a frame subset gives the same tokens (selectors rely on it)
    torch.testing.assert_close(backbone.encode_frames(make_frames(4)).tokens, tokens)
    first_two = Frames(indices=(0, 1), timestamps_s=(0.0, 1.0), pixels=make_frames(4).pixels[:2])
    torch.testing.assert_close(backbone.encode_frames(first_two).tokens, tokens[:2], atol=1e-5, rtol=1e-5)


def test_generate_accounting_and_determinism(backbone: TinyBackbone, frames16: EncodedVideo) -> None:
    visual = VisualSequence.whole(frames16)
    config = GenerationConfig(max_new_tokens=16)
    first = backbone.generate(visual, PROMPT, config)
    second = backbone.generate(visual, PROMPT, config)
    assert isinstance(first.text, str) and first.text == second.text
    assert first.visual_tokens == len(visual) + 1  # + LLaVA-OV's image_newline after the video
    assert first.text_tokens > 0 and first.text_tokens == second.text_tokens
    assert 1 <= first.generated_tokens <= config.max_new_tokens
    assert set(first.timings_s) == {"prefill", "decode"}


def test_reduced_visual_sequence_still_generates(backbone: TinyBackbone, frames16: EncodedVideo) -> None:
    first_frame = VisualSequence.select(frames16, torch.arange(backbone.tokens_per_frame))
    result = backbone.generate(first_frame, PROMPT, GenerationConfig(max_new_tokens=4))
    assert result.visual_tokens == backbone.tokens_per_frame + 1
    assert 1 <= result.generated_tokens <= 4


def test_generation_stops_at_stop_token(
    backbone: TinyBackbone, frames16: EncodedVideo, monkeypatch: pytest.MonkeyPatch
) -> None:
    visual = VisualSequence.whole(frames16)
    embeds, _, _ = backbone.prompt_embeds(visual, PROMPT)
    with torch.inference_mode():
        first_token = int(backbone.model(inputs_embeds=embeds).logits[0, -1].argmax())
    monkeypatch.setattr(backbone, "stop_ids", frozenset({first_token}))
    assert backbone.generate(visual, PROMPT, GenerationConfig(max_new_tokens=16)).generated_tokens == 1


def test_matches_official_transformers_video_path(backbone: TinyBackbone) -> None:
    """Our splice + own decode loop == HF's processor (expanded <video>) + model.generate, token for token."""
    frames = make_frames(4, seed=3)
    visual = VisualSequence.whole(backbone.encode_frames(frames))
    ours = backbone.generate(visual, PROMPT, GenerationConfig(max_new_tokens=8))

    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": PROMPT.user}]}]
    text = backbone.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = backbone.processor(text=[text + PROMPT.assistant_prefix], videos=[frames.pixels], return_tensors="pt")
    n_video = int((inputs["input_ids"] == backbone.video_token_id).sum())
    assert n_video == ours.visual_tokens
    assert inputs["input_ids"].shape[1] == ours.visual_tokens + ours.text_tokens
    with torch.inference_mode():
        output = backbone.model.generate(**inputs, max_new_tokens=8, do_sample=False)
        embeds, _, _ = backbone.prompt_embeds(visual, PROMPT)
        torch.testing.assert_close(
            backbone.model(inputs_embeds=embeds).logits[0, -1], backbone.model(**inputs).logits[0, -1]
        )
    new = output[0, inputs["input_ids"].shape[1] :]
    assert backbone.tokenizer.decode(new, skip_special_tokens=True) == ours.text
    assert len(new) == ours.generated_tokens


def test_choices_answer_is_the_option_letter_with_the_highest_next_token_logit(
    backbone: TinyBackbone, frames16: EncodedVideo
) -> None:
    letters = ("A", "B", "C", "D")
    visual = VisualSequence.whole(frames16)
    result = backbone.generate(visual, PROMPT, GenerationConfig(max_new_tokens=16, choices=letters))
    ids = [backbone.tokenizer(letter, add_special_tokens=False)["input_ids"][0] for letter in letters]
    with torch.inference_mode():
        embeds, _, _ = backbone.prompt_embeds(visual, PROMPT)
        logits = backbone.model(inputs_embeds=embeds).logits[0, -1]
    assert result.text == letters[int(logits[ids].argmax())]
    assert result.generated_tokens == 1
    # the unconstrained argmax is (almost surely, for a random model) some other token: the restriction is real
    assert int(logits.argmax()) not in ids


def test_prompt_with_extra_video_placeholder_is_rejected(backbone: TinyBackbone, frames16: EncodedVideo) -> None:
    prompt = Prompt(system="", user="Compare with <video> please.")
    with pytest.raises(ValueError, match="exactly one"):
        backbone.generate(VisualSequence.whole(frames16), prompt, GenerationConfig())


def test_visual_tokens_must_be_flat_and_of_the_llm_width(backbone: TinyBackbone, frames16: EncodedVideo) -> None:
    with pytest.raises(ValueError, match=r"must be \[L, C\]"):
        VisualSequence(frames16.tokens)  # per-frame tokens must be flattened first
    with pytest.raises(ValueError, match=r"visual tokens must be \[L, 64\]"):
        backbone.generate(VisualSequence(torch.zeros(3, 8)), PROMPT, GenerationConfig())


def test_embed_text_uses_input_embeddings(backbone: TinyBackbone) -> None:
    embedded = backbone.embed_text("Best Option: (A)")
    ids = backbone.tokenizer("Best Option: (A)", add_special_tokens=False)["input_ids"]
    assert embedded.shape == (len(ids), backbone.hidden_size)
    torch.testing.assert_close(embedded, backbone.model.get_input_embeddings().weight[ids])


def test_processor_round_trips(checkpoint: Path, tmp_path: Path) -> None:
    processor = AutoProcessor.from_pretrained(checkpoint)
    processor.save_pretrained(tmp_path)
    again = AutoProcessor.from_pretrained(tmp_path)
    assert type(again) is type(processor)
    assert again.video_processor.to_dict() == processor.video_processor.to_dict()
    assert again.image_processor.to_dict() == processor.image_processor.to_dict()
    assert again.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert again.chat_template == processor.chat_template == again.tokenizer.chat_template
    assert again.num_image_tokens == processor.num_image_tokens == 64
    assert processor.video_processor.size.height == processor.image_processor.size.height == TINY_IMAGE_SIZE
    for token in (ENDOFTEXT, IM_START, IM_END, IMAGE, VIDEO):  # each special token stays one unsplit id
        assert len(processor.tokenizer(token, add_special_tokens=False)["input_ids"]) == 1


def test_load_errors(checkpoint: Path, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available") as error:
            TinyBackbone.load(checkpoint=str(checkpoint), device="cuda")
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="unknown dtype"):
        TinyBackbone.load(checkpoint=str(checkpoint), dtype="float8")
    with pytest.raises(ConfigError, match="no such directory"):
        TinyBackbone.load(checkpoint=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="exactly one of"):
        TinyBackbone.load(checkpoint=str(checkpoint), tiny_seed=0)


def test_a_checkpoint_directory_loads_instead_of_the_tiny_seed(backbone: TinyBackbone, checkpoint: Path) -> None:
    loaded = TinyBackbone.load(checkpoint=str(checkpoint))
    assert loaded.model.name_or_path == str(checkpoint) and loaded.name == "tiny"
    assert TinyBackbone.tokens_per_frame_for(checkpoint=str(checkpoint)) == loaded.tokens_per_frame == 16


def test_preflight_checks_arguments_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    TinyBackbone.preflight()
    TinyBackbone.preflight(tiny_seed=5, dtype="bfloat16", device="cuda")  # the device is the worker's business
    assert not (tmp_path / "models").exists()  # nothing built, nothing loaded
    with pytest.raises(ConfigError) as error:
        TinyBackbone.preflight(seed=1)
    message = str(error.value)
    assert "'tiny'" in message and "'seed'" in message and "tiny_seed" in message and "checkpoint" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match="unknown dtype 'float8'"):
        TinyBackbone.preflight(dtype="float8")
    with pytest.raises(ConfigError, match="unknown attn_implementation"):
        TinyBackbone.preflight(attn_implementation="fast")
