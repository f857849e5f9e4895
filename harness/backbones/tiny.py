"""The `tiny` backbone: a real LLaVA-OneVision (SigLIP + GELU projector + Qwen2) with tiny random weights.

It is built offline from a fixed seed, saved with `save_pretrained` and loaded back with `from_pretrained`, so
offline runs exercise the same transformers code path, timings and memory accounting as the full-size models.
Its answers are near chance by construction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessor,
    LlavaOnevisionProcessor,
    LlavaOnevisionVideoProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
    SiglipVisionConfig,
)

from transformers.cache_utils import DynamicCache

from harness.core.records import LlmPrune
from harness.methods.hooks import HookUnavailable
from harness.backbones.hf_common import (
    chat_ids,
    chatml_template,
    choice_token_ids,
    ensure_built,
    greedy,
    llm_layers,
    load_pretrained,
    prefill_pruned,
    resolve_dtype,
    save_atomically,
    stop_ids,
    train_bpe_tokenizer,
)
from harness.core.paths import cache_dir
from harness.core.records import Frames, Generation, GenerationConfig, Prompt

IMAGE_SIZE = 64
PATCH_SIZE = 8  # 8×8 patch grid, pooled 2× for video like the 7B's 27×27 → 14×14
VOCAB_SIZE = 1024  # BPE target; the trained vocabulary may come out smaller on this corpus

ENDOFTEXT, IM_START, IM_END, IMAGE, VIDEO = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END, IMAGE, VIDEO]
DEFAULT_SYSTEM = "You are a helpful assistant."

# ChatML as in Qwen2: a default system turn when none is given; typed content renders each visual placeholder
# on its own line before the text, the LLaVA-OneVision layout ("<video>\n{question}").
CHAT_TEMPLATE = chatml_template(image="<image>\\n", video="<video>\\n", default_system=DEFAULT_SYSTEM)

# Enough English and prompt phrasing for BPE to learn merges the harness' prompts actually use.
_CORPUS = """\
You are a helpful assistant.
Select the best answer to the following multiple-choice question based on the video.
Respond with only the letter (A, B, C, D, or E) of the correct option.
Answer with the option's letter from the given choices directly.
Carefully watch the video and pay attention to the cause and sequence of events, the detail and movement of
objects, and the action and pose of persons. Based on your observations, select the best option that accurately
addresses the question.
Question: What is the man doing at the beginning of the video?
Options:
A. He is cooking dinner in the kitchen.
B. He is riding a bicycle along the river.
C. He is reading a book in the library.
D. He is playing the piano on a stage.
E. He is painting a wall in the garden.
Best Option: (
The best answer is
Answer: A
Answer: B
Answer: C
Answer: D
Answer: E
(A) (B) (C) (D) (E)
How many times does the woman open the door? How many people appear in the video? What color is the car?
Which object appears first? Where does the scene take place? Why does the dog run across the street?
What happens after the person picks up the cup? In what order do the following events occur?
The video shows a long sequence of scenes: a city street at night, a crowded market, a quiet forest, a beach
at sunset, a classroom with students, a football match, a cooking show and a documentary about animals.
A needle is inserted somewhere in the long video; find the frame and describe what it shows.
Count the number of red balls. Summarize the plot of the movie. Describe the main character.
0 1 2 3 4 5 6 7 8 9 10 11 12 16 20 24 30 32 48 60 64 100 128 256 512 1000 2024
first second third fourth fifth last before after during while then finally
the a an and or of to in on at by for with from into over under between through
is are was were be been has have had do does did can could will would should may might
he she it they we you I his her its their our your this that these those there here
yes no true false correct wrong left right up down start end begin beginning middle time frame frames
"""


def _train_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE (Qwen2's scheme) trained on the in-code corpus, with the ChatML/LLaVA special tokens."""
    return train_bpe_tokenizer(
        _CORPUS.splitlines() + [" ".join("ABCDE"), " ".join("0123456789")],
        SPECIAL_TOKENS,
        eos=IM_END,  # chat models end their turn with <|im_end|>, as Qwen2-Instruct does
        pad=ENDOFTEXT,
        chat_template=CHAT_TEMPLATE,
        vocab_size=VOCAB_SIZE,
        extra_special_tokens={"image_token": IMAGE, "video_token": VIDEO},
    )


def _tiny_config(tokenizer: PreTrainedTokenizerFast) -> LlavaOnevisionConfig:
    vision = SiglipVisionConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        vision_use_head=False,  # LLaVA-OV uses the patch features, not SigLIP's pooling head
    )
    text = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlavaOnevisionConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        video_token_index=tokenizer.convert_tokens_to_ids(VIDEO),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=_grid_pinpoints(),
    )


def _grid_pinpoints() -> list[list[int]]:
    """The 7B's anyres grid (1..6 tiles per side) scaled to the tiny tile size."""
    return [[IMAGE_SIZE * h, IMAGE_SIZE * w] for h in range(1, 7) for w in range(1, 7)]


def build_tiny_model(seed: int = 0) -> tuple[LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor]:
    """The seeded tiny model and its processor, in memory (deterministic for a given seed)."""
    tokenizer = _train_tokenizer()
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=_grid_pinpoints()),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        num_image_tokens=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = LlavaOnevisionForConditionalGeneration(_tiny_config(tokenizer))
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(ENDOFTEXT)]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), processor


def build_tiny_checkpoint(directory: Path, seed: int = 0) -> Path:
    """Build the seeded tiny model + processor and save them to `directory`, which must not exist yet."""

    def write(staging: Path) -> None:
        model, processor = build_tiny_model(seed)
        model.save_pretrained(staging)
        processor.save_pretrained(staging)

    return save_atomically(directory, write)


# Bump when the tiny config, tokenizer corpus or layout changes, so a stale cached checkpoint is not reused.
TINY_FORMAT = 1


def default_checkpoint(seed: int = 0) -> Path:
    return cache_dir() / "models" / f"tiny-llava-ov-v{TINY_FORMAT}-seed{seed}"


def ensure_checkpoint(directory: Path, seed: int = 0, build: Callable[[Path, int], Path] | None = None) -> Path:
    """Build `directory` once (default builder: the tiny LLaVA-OV); concurrent first users wait on a file lock
    instead of building twice."""
    return ensure_built(directory, lambda d: (build or build_tiny_checkpoint)(d, seed))


def load_tiny(
    *,
    checkpoint: str | None = None,
    seed: int = 0,
    dtype: str = "float32",
    device: str = "cpu",
    num_threads: int | None = None,
) -> TinyBackbone:
    """Registry factory: load (building on first use) the tiny checkpoint through `from_pretrained`."""
    resolve_dtype(dtype)  # a bad dtype fails before the checkpoint is built
    if checkpoint is None:
        directory = ensure_checkpoint(default_checkpoint(seed), seed)
    else:
        directory = Path(checkpoint)
        if not directory.is_dir():  # from_pretrained would otherwise try the Hub with it as a repo id
            raise FileNotFoundError(f"tiny checkpoint directory not found: {directory}")
    model, processor = load_pretrained(LlavaOnevisionForConditionalGeneration, AutoProcessor, str(directory),
                                       dtype=dtype, device=device, num_threads=num_threads)
    return TinyBackbone(model, processor)


class TinyBackbone:
    """The Backbone protocol over a loaded LLaVA-OneVision model and its processor."""

    name = "tiny"
    hooks = frozenset({"embed_text", "prompt_embeds", "vision_attention", "llm_prune"})

    def __init__(self, model: LlavaOnevisionForConditionalGeneration, processor: LlavaOnevisionProcessor) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.device = model.device
        self.dtype = model.dtype
        self.hidden_size: int = model.config.text_config.hidden_size
        self.video_token_id: int = model.config.video_token_id
        self.stop_ids: frozenset[int] = stop_ids(model)
        vision = model.config.vision_config
        grid = vision.image_size // vision.patch_size
        with torch.inference_mode():  # ask the model's own pooling, so this always matches encode_frames
            probe = torch.zeros(1, grid * grid, self.hidden_size, dtype=self.dtype, device=self.device)
            self.tokens_per_frame: int = model.model.apply_pooling(probe).shape[1]

    def encode_frames(self, frames: Frames) -> torch.Tensor:
        """Official LLaVA-OV video path (video processor → SigLIP → projector → 2× pooling): [T, M, C]."""
        if len(frames) == 0:
            raise ValueError("encode_frames needs at least one frame")
        with torch.inference_mode():
            pixels = self._video_pixels(frames)  # [1, T, 3, S, S]
            features = self.model.get_video_features(pixels, return_dict=True).pooler_output  # [1, T*M + 1, C]
        # get_video_features appends image_newline after the whole video; generate() re-appends it after the
        # (possibly reduced) sequence, so per-frame tokens leave without it.
        return features[0, :-1].reshape(len(frames), self.tokens_per_frame, self.hidden_size)

    def vision_attention(self, frames: Frames) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean attention each vision token receives [T, M] and head-averaged keys [T, M, d] (see Backbone).

        Read at the SigLIP layer whose output is the feature layer (q/k captured there, softmax recomputed,
        since SDPA returns no weights), then pooled with the model's own 2× bilinear pooling.
        """
        if len(frames) == 0:
            raise ValueError("vision_attention needs at least one frame")
        tower = self.model.model.vision_tower
        layers = tower.encoder.layers
        feature_layer = self.model.config.vision_feature_layer
        if not isinstance(feature_layer, int):
            raise HookUnavailable("vision_attention: multi-layer vision features are not supported")
        # hidden_states[0] is the embedding output, so hidden_states[f] is the output of layer f - 1
        attn = layers[feature_layer % (len(layers) + 1) - 1].self_attn
        captured: dict[str, torch.Tensor] = {}
        handles = [
            attn.q_proj.register_forward_hook(lambda _m, _i, out: captured.__setitem__("q", out)),
            attn.k_proj.register_forward_hook(lambda _m, _i, out: captured.__setitem__("k", out)),
        ]
        try:
            with torch.inference_mode():
                tower(pixel_values=self._video_pixels(frames)[0])
        finally:
            for handle in handles:
                handle.remove()
        t, p, _ = captured["q"].shape
        q = captured["q"].view(t, p, attn.num_heads, attn.head_dim).transpose(1, 2)
        k = captured["k"].view(t, p, attn.num_heads, attn.head_dim).transpose(1, 2)
        weights = torch.softmax((q @ k.transpose(-1, -2)).float() * attn.scale, dim=-1)  # [T, H, P, P]
        received = weights.mean(dim=(1, 2))  # SigLIP has no CLS: mean over heads and queries
        keys = k.mean(dim=1).float()  # [T, P, d]
        pool = self.model.model.apply_pooling
        return pool(received[..., None])[..., 0], pool(keys)

    def embed_text(self, text: str) -> torch.Tensor:
        """LLM input embeddings of `text` (no special tokens added): [n, C]."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._embed_ids(ids)

    def prompt_embeds(self, visual_tokens: torch.Tensor, prompt: Prompt) -> tuple[torch.Tensor, int, int]:
        """The chat's input embeddings [1, n, C] with `visual_tokens` + image_newline at the video placeholder.

        Returns (embeddings, visual tokens entering the LLM, text tokens).
        """
        embeds, _, n_visual, n_text = self._prompt(visual_tokens, prompt)
        return embeds, n_visual, n_text

    def _prompt(self, visual_tokens: torch.Tensor, prompt: Prompt) -> tuple[torch.Tensor, int, int, int]:
        """prompt_embeds plus the position where the visual span starts."""
        if visual_tokens.ndim != 2 or visual_tokens.shape[1] != self.hidden_size:
            raise ValueError(f"visual_tokens must be [L, {self.hidden_size}], got {list(visual_tokens.shape)}")
        ids, at = chat_ids(self.tokenizer, prompt, {"type": "video"}, self.video_token_id, VIDEO)
        with torch.inference_mode():
            embedded = self._embed_ids(ids)
            newline = self.model.model.image_newline.to(self.dtype)[None]
            visual = torch.cat([visual_tokens.to(self.device, self.dtype), newline])
            embeds = torch.cat([embedded[:at], visual, embedded[at + 1 :]])[None]
        return embeds, at, visual.shape[0], len(ids) - 1

    def generate(
        self, visual_tokens: torch.Tensor, prompt: Prompt, config: GenerationConfig, *,
        llm_prune: LlmPrune | None = None,
    ) -> Generation:
        """Greedy decoding with an explicit KV cache: one prefill forward, then one forward per new token.

        With `llm_prune` (FastV) the prefill prunes visual tokens at layer K (`prefill_pruned`).
        """
        if config.do_sample:
            raise ValueError("the tiny backbone decodes greedily only (do_sample=False)")
        start = time.perf_counter()
        embeds, at, n_visual, n_text = self._prompt(visual_tokens, prompt)
        after_prune = None

        def prefill() -> tuple[torch.Tensor, Any]:
            nonlocal after_prune
            if llm_prune is None:
                out = self.model(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
                return out.logits[0, -1], out.past_key_values
            # the trailing image_newline is a separator, not a visual token to rank: it is always kept
            logits, cache, kept = self.prefill_pruned(embeds, range(at, at + n_visual - 1), llm_prune)
            after_prune = len(kept) + 1
            return logits, cache

        def step(token: int, i: int, cache: Any) -> tuple[torch.Tensor, Any]:
            if llm_prune is None:
                ids = torch.tensor([[token]], device=self.device)
                out = self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
                return out.logits[0, -1], out.past_key_values
            # layers keep different cache lengths, so run the decoder layers directly
            positions = torch.tensor([[embeds.shape[1] + i]], device=self.device)
            return self._llm_layers(self._embed_ids([token])[None], positions, cache, None)[0, -1], cache

        out = greedy(prefill, step, self.stop_ids, config.max_new_tokens, start,
                     choice_token_ids(self.tokenizer, config.choices) if config.choices else None)
        return Generation(
            text=self.tokenizer.decode(out.tokens, skip_special_tokens=True),
            visual_tokens=n_visual,
            text_tokens=n_text,
            generated_tokens=len(out.tokens),
            timings_s={"prefill": out.prefill_s, "decode": out.decode_s},
            visual_tokens_after_llm_prune=after_prune,
        )

    @torch.inference_mode()
    def prefill_pruned(
        self, embeds: torch.Tensor, visual: range, prune: LlmPrune
    ) -> tuple[torch.Tensor, DynamicCache, list[int]]:
        """FastV prefill: layers < K see every token; from layer K on only the top ceil(keep_ratio·N) visual
        tokens by the last prompt token's attention at layer K - 1 (mean over heads) remain, at their
        original positions. Returns (last-position logits [V], cache, kept visual positions)."""
        n = embeds.shape[1]
        positions = torch.arange(n, device=self.device)[None]
        logits, cache, kept, _ = prefill_pruned(self.model, embeds, positions, visual, prune.layer, prune.keep_ratio)
        return logits, cache, kept

    def _llm_layers(
        self, hidden: torch.Tensor, positions: torch.Tensor, cache: DynamicCache, mask: torch.Tensor | None,
        start: int = 0, stop: int | None = None,
    ) -> torch.Tensor:
        return llm_layers(self.model, hidden, positions, cache, mask, start, stop)

    def _video_pixels(self, frames: Frames) -> torch.Tensor:
        batch = self.processor.video_processor(
            videos=[frames.pixels], input_data_format="channels_last", return_tensors="pt"
        )
        return batch["pixel_values_videos"].to(self.device, self.dtype)

    def _embed_ids(self, ids: list[int]) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.get_input_embeddings()(torch.tensor(ids, device=self.device))
