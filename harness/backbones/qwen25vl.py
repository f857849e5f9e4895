"""Qwen2.5-VL (`Qwen2_5_VLForConditionalGeneration`) behind the Backbone protocol.

Qwen2.5-VL places every visual token with a 3-D M-RoPE position (time, row, column). The time component
comes from the frames' real timestamps: a temporal group starting at t seconds after the first frame gets
`floor(t * tokens_per_second)` (arXiv 2502.13923 §2.1, "absolute time encoding"). For uniform frames this
equals the processor's `second_per_grid_ts = temporal_patch_size / sampled_fps` path; for irregular frames
(keyframe selectors) it stays true where a single fps cannot. lmms-eval passed no video metadata until
#1260/#1269, which silently put every video at the processor's default 2 fps.

`qwen25vl-tiny` is the same class from a tiny random config (ViT 2 blocks, patch 8, LLM 2 layers, head_dim 16
so `mrope_section` sums to 8), saved with its processor and loaded back with `from_pretrained`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoProcessor,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)
from transformers.video_utils import VideoMetadata

from harness.core.records import LlmPrune
from harness.methods.hooks import HookUnavailable
from harness.backbones.hf_common import (
    chat_ids,
    check_checkpoint,
    chatml_template,
    choice_token_ids,
    ensure_built,
    greedy,
    llm_layers,
    load_pretrained,
    prefill_pruned,
    save_atomically,
    stop_ids,
    train_bpe_tokenizer,
)
from harness.core.paths import cache_dir
from harness.core.records import Frames, Generation, GenerationConfig, Prompt

HUB_ID = "Qwen/Qwen2.5-VL-7B-Instruct"

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD]
DEFAULT_SYSTEM = "You are a helpful assistant."

# Qwen2-VL's ChatML: default system turn, each visual item wrapped in vision_start/end, then the text.
CHAT_TEMPLATE = chatml_template(image=VISION_START + IMAGE_PAD + VISION_END, video=VISION_START + VIDEO_PAD + VISION_END,
                                default_system=DEFAULT_SYSTEM)

TINY_PATCH = 8
TINY_MAX_PIXELS = 64 * 64  # per frame: a 64×64 frame is an 8×8 patch grid, merged 2×2 → 16 tokens per group
TINY_FORMAT = 1  # bump when the tiny config or tokenizer changes


def _tiny_tokenizer() -> Any:
    from harness.backbones.tiny import _CORPUS  # the same prompt-phrasing corpus as the tiny LLaVA-OV

    lines = _CORPUS.splitlines() + [" ".join("ABCDE"), " ".join("0123456789")]
    return train_bpe_tokenizer(
        lines, SPECIAL_TOKENS, eos=IM_END, pad=ENDOFTEXT, chat_template=CHAT_TEMPLATE,
        extra_special_tokens={"image_token": IMAGE_PAD, "video_token": VIDEO_PAD},
    )


def mrope_section(head_dim: int) -> list[int]:
    """(time, height, width) split of head_dim/2 rotary frequencies, in the 7B's proportions (128 → [16, 24, 24])."""
    half = head_dim // 2
    t = half // 4
    return [t, (half - t) // 2, half - t - (half - t) // 2]


def build_tiny_qwen25vl(
    seed: int = 0, hidden: int = 64, heads: int = 4
) -> tuple[Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor]:
    """`hidden`/`heads` set the LLM's head_dim (16 by default; vLLM's CPU attention needs 64)."""
    tokenizer = _tiny_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": TINY_PATCH,
            "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": hidden,
            "window_size": 4 * TINY_PATCH, "fullatt_block_indexes": [1],
            "tokens_per_second": 2,  # Qwen2.5-VL-7B-Instruct's config.json value
        },
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": 2 * hidden,
            "num_hidden_layers": 2, "num_attention_heads": heads, "num_key_value_heads": max(heads // 2, 1),
            "max_position_embeddings": 32768,
            # mrope_section must sum to head_dim / 2
            "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0,
                                "mrope_section": mrope_section(hidden // heads)},
            "eos_token_id": ids(IM_END), "pad_token_id": ids(ENDOFTEXT), "bos_token_id": None,
        },
        image_token_id=ids(IMAGE_PAD), video_token_id=ids(VIDEO_PAD),
        vision_start_token_id=ids(VISION_START), vision_end_token_id=ids(VISION_END),
    )
    size = {"shortest_edge": 4 * TINY_PATCH * TINY_PATCH, "longest_edge": TINY_MAX_PIXELS}
    common = dict(patch_size=TINY_PATCH, temporal_patch_size=2, merge_size=2, size=size)
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**common),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**common, do_sample_frames=False),
        chat_template=CHAT_TEMPLATE,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [ids(IM_END), ids(ENDOFTEXT)]
    model.generation_config.pad_token_id = ids(ENDOFTEXT)
    return model.eval(), processor


def tiny_checkpoint(seed: int = 0, hidden: int = 64, heads: int = 4) -> Path:
    def write(staging: Path) -> None:
        model, processor = build_tiny_qwen25vl(seed, hidden, heads)
        model.save_pretrained(staging)
        processor.save_pretrained(staging)

    shape = "" if (hidden, heads) == (64, 4) else f"-h{hidden}x{heads}"
    directory = cache_dir() / "models" / f"tiny-qwen25vl-v{TINY_FORMAT}{shape}-seed{seed}"
    return ensure_built(directory, lambda d: save_atomically(d, write))


def load_qwen25vl(
    *,
    checkpoint: str | None = None,
    tiny_seed: int | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    attn_implementation: str = "sdpa",
    num_threads: int | None = None,
) -> Qwen25VLBackbone:
    """Registry factory: `checkpoint` (hub id or directory), or the tiny random checkpoint for `tiny_seed`."""
    if (checkpoint is None) == (tiny_seed is None):
        raise ValueError("qwen25vl needs exactly one of checkpoint=<hub id or dir> or tiny_seed=<int>")
    source = str(tiny_checkpoint(tiny_seed)) if tiny_seed is not None else checkpoint
    model, processor = load_pretrained(
        Qwen2_5_VLForConditionalGeneration, AutoProcessor, source,  # type: ignore[arg-type]
        dtype=dtype, device=device, attn_implementation=attn_implementation, num_threads=num_threads,
    )
    return Qwen25VLBackbone(model, processor, name="qwen25vl-tiny" if tiny_seed is not None else "qwen25vl")


load_qwen25vl.preflight = check_checkpoint  # type: ignore[attr-defined]  # harness.backbones.check_backbone


class Qwen25VLBackbone:
    """`encode_frames` returns one row per temporal group of `frames_per_group` (= 2) consecutive frames: the ViT
    patches 2 frames at a time (an odd count is padded with the last frame by the processor)."""

    hooks = frozenset({"embed_text", "prompt_embeds", "vision_attention", "vision_features", "llm_prune",
                       "token_positions"})

    def __init__(self, model: Qwen2_5_VLForConditionalGeneration, processor: Any, name: str = "qwen25vl") -> None:
        self.name = name
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.device = model.device
        self.dtype = model.dtype
        self.hidden_size: int = model.config.text_config.hidden_size
        self.video_token_id: int = model.config.video_token_id
        vision = model.config.vision_config
        self.frames_per_group: int = vision.temporal_patch_size
        self.tokens_per_second: float = float(vision.tokens_per_second)
        self.merge: int = vision.spatial_merge_size
        side = int((processor.video_processor.size["longest_edge"]) ** 0.5) // (vision.patch_size * self.merge)
        self.tokens_per_frame: int = side * side  # per temporal group, for a square frame at the pixel cap
        self.stop_ids = stop_ids(model)
        self._encoded: tuple[torch.Tensor, torch.Tensor, tuple[float, ...]] | None = None
        self._token_rows: torch.Tensor | None = None  # declared by a merging reducer (set_token_rows)

    def _video_inputs(self, frames: Frames) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's own video processor on our frames: (pixel patches, grid [1, 3] = (T/2, H, W) patches)."""
        metadata = VideoMetadata(
            total_num_frames=len(frames), fps=_sampled_fps(frames), frames_indices=list(range(len(frames))),
        )
        batch = self.processor.video_processor(
            videos=[frames.pixels], video_metadata=[metadata], input_data_format="channels_last",
            do_sample_frames=False, cap_pixels_per_frame=True,  # qwen-vl-utils' per-frame pixel cap
            return_tensors="pt",
        )
        return batch["pixel_values_videos"].to(self.device, self.dtype), batch["video_grid_thw"].to(self.device)

    def encode_frames(self, frames: Frames) -> torch.Tensor:
        """Official path (video processor → ViT with window attention → 2×2 merger): [T/2, h·w, C]."""
        if len(frames) == 0:
            raise ValueError("encode_frames needs at least one frame")
        with torch.inference_mode():
            pixels, grid = self._video_inputs(frames)
            tokens = self.model.model.get_video_features(pixels, grid, return_dict=True).pooler_output[0]
        # Remembered for generate(): the positions of these exact rows. The pipeline encodes, then generates.
        self._encoded = (tokens, grid, tuple(frames.timestamps_s))
        self._token_rows = None
        return tokens.reshape(int(grid[0, 0]), -1, self.hidden_size)

    def vision_features(self, frames: Frames) -> tuple[torch.Tensor, torch.Tensor]:
        """(ViT output patches [T/2, h·w, merge², Cv] grouped per LLM token, merged tokens [T/2, h·w, C])."""
        with torch.inference_mode():
            pixels, grid = self._video_inputs(frames)
            out = self.model.model.visual(pixels, grid_thw=grid)
        groups, order = int(grid[0, 0]), self._window_order(grid)
        unit = self.merge * self.merge
        pre = out.last_hidden_state.reshape(-1, unit, out.last_hidden_state.shape[-1])[order]
        return pre.reshape(groups, -1, unit, pre.shape[-1]), out.pooler_output.reshape(groups, -1, self.hidden_size)

    def vision_attention(self, frames: Frames) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean attention each LLM visual token's patches receive [T/2, M] and head-averaged keys [T/2, M, d],
        at the last ViT block (whose output the merger projects), averaged over each token's merge² patches.

        q/k are captured there and the softmax recomputed per attention segment, since SDPA returns no weights.
        """
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

        if len(frames) == 0:
            raise ValueError("vision_attention needs at least one frame")
        visual = self.model.model.visual
        attn = visual.blocks[-1].attn
        captured: dict[str, Any] = {}
        handles = [
            attn.qkv.register_forward_hook(lambda _m, _i, out: captured.__setitem__("qkv", out)),
            attn.register_forward_pre_hook(lambda _m, _a, kw: captured.__setitem__("kw", kw), with_kwargs=True),
        ]
        try:
            with torch.inference_mode():
                pixels, grid = self._video_inputs(frames)
                visual(pixels, grid_thw=grid)
        finally:
            for handle in handles:
                handle.remove()
        n = captured["qkv"].shape[0]
        q, k, _ = captured["qkv"].reshape(n, 3, attn.num_heads, -1).permute(1, 0, 2, 3).unbind(0)  # [n, H, d]
        cos, sin = captured["kw"]["position_embeddings"]
        q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
        bounds = captured["kw"]["cu_seqlens"].tolist()
        received = torch.empty(n, dtype=torch.float32, device=q.device)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            qs, ks = q[a:b].transpose(0, 1).float(), k[a:b].transpose(0, 1).float()  # [H, s, d]
            weights = torch.softmax(qs @ ks.transpose(-1, -2) * attn.scaling, dim=-1)  # [H, s, s]
            received[a:b] = weights.mean(dim=(0, 1))
        unit, groups, order = self.merge * self.merge, int(grid[0, 0]), self._window_order(grid)
        received = received.reshape(-1, unit)[order].mean(dim=1).reshape(groups, -1)
        keys = k.float().mean(dim=1).reshape(-1, unit, k.shape[-1])[order].mean(dim=1)
        return received, keys.reshape(groups, -1, keys.shape[-1])

    def _window_order(self, grid: torch.Tensor) -> torch.Tensor:
        """Index that undoes the ViT's window permutation of merge units (as its merger output does)."""
        from transformers.vision_utils import get_vision_window_index

        visual = self.model.model.visual
        window_index, _ = get_vision_window_index(
            grid, spatial_merge_size=visual.spatial_merge_size, window_size=visual.window_size,
            patch_size=visual.patch_size, kwargs={},
        )
        return torch.argsort(window_index)

    def embed_text(self, text: str) -> torch.Tensor:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            return self.model.get_input_embeddings()(torch.tensor(ids, device=self.device))

    def video_positions(self, ids: list[int], at: int) -> torch.Tensor:
        """M-RoPE positions [3, n] of the chat with the last encoded video in full at `at`: the model's own
        `get_rope_index`, with the temporal row of video tokens set from the real frame timestamps."""
        if self._encoded is None:
            raise RuntimeError("generate() needs encode_frames() first: Qwen2.5-VL positions come from the video grid")
        tokens, grid, timestamps = self._encoded
        n = tokens.shape[0]
        full = torch.tensor([ids[:at] + [self.video_token_id] * n + ids[at + 1 :]], device=self.device)
        types = (full == self.video_token_id).int() * 2  # 0 text, 1 image, 2 video
        positions, _ = self.model.model.get_rope_index(full, types, video_grid_thw=grid)
        positions = positions[:, 0]
        groups = int(grid[0, 0])
        group_start = torch.tensor([timestamps[min(g * self.frames_per_group, len(timestamps) - 1)]
                                    for g in range(groups)], dtype=torch.float64)
        ticks = torch.floor((group_start - group_start[0]) * self.tokens_per_second + 1e-6).long()
        positions[0, at : at + n] = at + ticks.repeat_interleave(n // groups).to(self.device)
        return positions

    def set_token_rows(self, rows: torch.Tensor) -> None:
        """"token_positions" hook: the row of the last encoded video whose M-RoPE position each visual token takes."""
        if self._encoded is None:
            raise RuntimeError("set_token_rows() needs encode_frames() first: rows index its output")
        n = self._encoded[0].shape[0]
        rows = torch.as_tensor(rows, dtype=torch.long).flatten().cpu()
        if rows.numel() and not 0 <= int(rows.min()) <= int(rows.max()) < n:
            raise ValueError(f"token rows must lie in [0, {n}), got [{int(rows.min())}, {int(rows.max())}]")
        self._token_rows = rows

    def _kept_rows(self, visual_tokens: torch.Tensor) -> torch.Tensor:
        """Which rows of the last encoded video `visual_tokens` are, so pruned sequences keep their positions:
        the declared rows (set_token_rows) if any, else found by matching each token to an encoded row."""
        if self._token_rows is not None:
            if len(self._token_rows) != visual_tokens.shape[0]:
                raise ValueError(f"{len(self._token_rows)} declared token rows for {visual_tokens.shape[0]} "
                                 "visual tokens")
            return self._token_rows
        tokens = self._encoded[0]  # type: ignore[index]
        if visual_tokens.shape == tokens.shape and torch.equal(visual_tokens.to(tokens), tokens):
            return torch.arange(tokens.shape[0])
        index = {row.tobytes(): i for i, row in enumerate(tokens.float().cpu().numpy())}
        rows = [index.get(row.tobytes(), -1) for row in visual_tokens.to(tokens).float().cpu().numpy()]
        if (missing := rows.count(-1)) > 0:
            raise HookUnavailable(
                f"{self.name}: {missing} of {len(rows)} visual tokens are not rows of encode_frames' output, so they "
                "have no M-RoPE (time, row, column) position; use a reducer that selects tokens, or one that merges "
                "and declares each token's row (the 'token_positions' hook, set_token_rows)"
            )
        return torch.tensor(rows)

    def _prompt(self, visual_tokens: torch.Tensor, prompt: Prompt) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """(embeddings [1, n, C], positions [3, 1, n], where the visual span starts, text tokens)."""
        if visual_tokens.ndim != 2 or visual_tokens.shape[1] != self.hidden_size:
            raise ValueError(f"visual_tokens must be [L, {self.hidden_size}], got {list(visual_tokens.shape)}")
        ids, at = chat_ids(self.tokenizer, prompt, {"type": "video"}, self.video_token_id, VIDEO_PAD)
        full_positions = self.video_positions(ids, at)
        n_full = self._encoded[0].shape[0]  # type: ignore[index]
        rows = self._kept_rows(visual_tokens).to(self.device)
        positions = torch.cat([full_positions[:, :at], full_positions[:, at + rows], full_positions[:, at + n_full :]],
                              dim=1)
        with torch.inference_mode():
            embedded = self.model.get_input_embeddings()(torch.tensor(ids, device=self.device))
            embeds = torch.cat([embedded[:at], visual_tokens.to(self.device, self.dtype), embedded[at + 1 :]])[None]
        return embeds, positions[:, None, :], at, len(ids) - 1

    def prompt_embeds(self, visual_tokens: torch.Tensor, prompt: Prompt) -> tuple[torch.Tensor, int, int]:
        """The chat's input embeddings [1, n, C] with `visual_tokens` at the video placeholder (see Backbone)."""
        embeds, _, _, n_text = self._prompt(visual_tokens, prompt)
        return embeds, visual_tokens.shape[0], n_text

    def generate(
        self, visual_tokens: torch.Tensor, prompt: Prompt, config: GenerationConfig, *, llm_prune: LlmPrune | None = None
    ) -> Generation:
        """Greedy decoding; with `llm_prune` (FastV) the prefill keeps only the top visual tokens from layer K on."""
        if config.do_sample:
            raise ValueError(f"the {self.name} backbone decodes greedily only (do_sample=False)")
        start = time.perf_counter()
        embeds, positions, at, n_text = self._prompt(visual_tokens, prompt)
        n_visual = visual_tokens.shape[0]
        next_position = int(positions.max()) + 1
        after_prune: int | None = None

        def prefill() -> tuple[torch.Tensor, Any]:
            nonlocal after_prune
            if llm_prune is None:
                out = self.model(inputs_embeds=embeds, position_ids=positions, use_cache=True, logits_to_keep=1)
                return out.logits[0, -1], out.past_key_values
            logits, cache, kept, _ = prefill_pruned(
                self.model, embeds, positions, range(at, at + n_visual), llm_prune.layer, llm_prune.keep_ratio
            )
            after_prune = len(kept)
            return logits, cache

        def step(token: int, i: int, cache: Any) -> tuple[torch.Tensor, Any]:
            position = torch.full((3, 1, 1), next_position + i, device=self.device, dtype=torch.long)
            ids = torch.tensor([[token]], device=self.device)
            if llm_prune is None:
                out = self.model(input_ids=ids, position_ids=position, past_key_values=cache, use_cache=True,
                                 logits_to_keep=1)
                return out.logits[0, -1], out.past_key_values
            # layers hold different cache lengths after pruning, so run them directly (no mask: one query)
            hidden = self.model.get_input_embeddings()(ids)
            return llm_layers(self.model, hidden, position, cache, None)[0, -1], cache

        out = greedy(prefill, step, self.stop_ids, config.max_new_tokens, start,
                     choice_token_ids(self.tokenizer, config.choices) if config.choices else None)
        return Generation(
            text=self.tokenizer.decode(out.tokens, skip_special_tokens=True),
            visual_tokens=n_visual, text_tokens=n_text, generated_tokens=len(out.tokens),
            timings_s={"prefill": out.prefill_s, "decode": out.decode_s},
            visual_tokens_after_llm_prune=after_prune,
        )


def _sampled_fps(frames: Frames) -> float:
    """Frames per second of the sample itself (what Qwen's processor calls `sampled_fps`)."""
    if len(frames) < 2:
        return 1.0
    span = frames.timestamps_s[-1] - frames.timestamps_s[0]
    return (len(frames) - 1) / span if span > 0 else 1.0
