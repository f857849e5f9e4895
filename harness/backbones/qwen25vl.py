"""Qwen2.5-VL (`Qwen2_5_VLForConditionalGeneration`) behind the Backbone protocol.

Qwen2.5-VL places every visual token with a 3-D M-RoPE position (time, row, column) ("grid" placement): generate
takes each token's position from the encoded row it stands for (`VisualSequence.rows` of `.source`). The time
component comes from the frames' real timestamps: a temporal group starting at t seconds after the first frame
gets `floor(t * tokens_per_second)` (arXiv 2502.13923 §2.1, "absolute time encoding"). For uniform frames this
equals the processor's `second_per_grid_ts = temporal_patch_size / sampled_fps` path; for irregular frames
(keyframe selectors) it stays true where a single fps cannot. lmms-eval passed no video metadata until
#1260/#1269, which silently put every video at the processor's default 2 fps.

The tiny checkpoints (`tiny_seed=`) are the same class from a tiny random config (ViT 2 blocks, patch 8, LLM 2
layers, head_dim 16 so `mrope_section` sums to 8), saved with their processor and loaded with `from_pretrained`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from harness.backbones.base import Placement
from harness.backbones.decoding import PromptInputs
from harness.backbones.pretrained import PretrainedBackbone
from harness.core.records import EncodedVideo, Frames, Prompt, VisualSequence
from harness.hf.checkpoints import save_all, seeded, tiny_checkpoint
from harness.hf.text import DEFAULT_SYSTEM, ENDOFTEXT, IM_END, chat_ids, chatml_template, tiny_tokenizer

if TYPE_CHECKING:  # transformers loads on first use: the spec check needs only the class attributes
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"

# Qwen2-VL's ChatML: default system turn, each visual item wrapped in vision_start/end, then the text.
CHAT_TEMPLATE = chatml_template(image=VISION_START + IMAGE_PAD + VISION_END,
                                video=VISION_START + VIDEO_PAD + VISION_END, default_system=DEFAULT_SYSTEM)

TINY_PATCH = 8
TINY_MAX_PIXELS = 64 * 64  # per frame: a 64×64 frame is an 8×8 patch grid, merged 2×2 → 16 tokens per group
TINY_HIDDEN, TINY_HEADS = 64, 4  # LLM head_dim 16
TINY_FORMAT = 1  # bump when the tiny config or tokenizer changes


def mrope_section(head_dim: int) -> list[int]:
    """(time, height, width) split of head_dim/2 rotary frequencies, in the 7B's proportions (128 → [16, 24, 24])."""
    half = head_dim // 2
    t = half // 4
    return [t, (half - t) // 2, half - t - (half - t) // 2]


def build_tiny_qwen25vl(seed: int = 0) -> tuple[Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor]:
    """The seeded tiny model and its processor, in memory (deterministic for a given seed)."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = tiny_tokenizer(CHAT_TEMPLATE, IMAGE_PAD, VIDEO_PAD, markers=(VISION_START, VISION_END))
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": TINY_PATCH,
            "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": TINY_HIDDEN,
            "window_size": 4 * TINY_PATCH, "fullatt_block_indexes": [1],
            "tokens_per_second": 2,  # Qwen2.5-VL-7B-Instruct's config.json value
        },
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": TINY_HIDDEN, "intermediate_size": 2 * TINY_HIDDEN,
            "num_hidden_layers": 2, "num_attention_heads": TINY_HEADS, "num_key_value_heads": TINY_HEADS // 2,
            "max_position_embeddings": 32768,
            # mrope_section must sum to head_dim / 2
            "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0,
                                "mrope_section": mrope_section(TINY_HIDDEN // TINY_HEADS)},
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
    with seeded(seed):
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [ids(IM_END), ids(ENDOFTEXT)]
    model.generation_config.pad_token_id = ids(ENDOFTEXT)
    return model.eval(), processor


class Qwen25VLBackbone(PretrainedBackbone):
    """`qwen25vl`: encode_frames gives one row per temporal group of `frames_per_row` (= 2) consecutive frames (the
    ViT patches 2 frames at a time; an odd count is padded with the last frame by the processor), with its grid."""

    hooks: ClassVar[frozenset[str]] = frozenset(
        {"embed_text", "prompt_embeds", "vision_attention", "vision_features", "llm_prune", "llm_fuse",
         "coarse_encode"})
    placement: ClassVar[Placement] = "grid"
    family: ClassVar[str] = "qwen25vl"
    tiny_name: ClassVar[str] = "qwen25vl-tiny"
    model_class: ClassVar[str] = "Qwen2_5_VLForConditionalGeneration"

    def __init__(self, model: Qwen2_5_VLForConditionalGeneration, processor: Any, name: str) -> None:
        super().__init__(model, processor, name)
        vision = model.config.vision_config
        self.frames_per_row: int = vision.temporal_patch_size
        self.tokens_per_second: float = float(vision.tokens_per_second)
        self.merge: int = vision.spatial_merge_size
        side = int((processor.video_processor.size["longest_edge"]) ** 0.5) // (vision.patch_size * self.merge)
        self.tokens_per_frame: int = side * side  # per temporal group, for a square frame at the pixel cap

    @classmethod
    def tiny_checkpoint(cls, seed: int) -> Path:
        return tiny_checkpoint("qwen25vl", TINY_FORMAT, seed,
                               lambda staging: save_all(staging, *build_tiny_qwen25vl(seed)))

    @classmethod
    def tokens_per_frame_for(cls, **args: Any) -> None:
        return None  # dynamic resolution: the tokens per frame follow the frame size

    def _video_inputs(self, frames: Frames, exact_area: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's own video processor on our frames: (pixel patches, grid [1, 3] = (T/2, H, W) patches).
        `exact_area`: frames already resized to that many pixels, kept as they are (no per-frame cap)."""
        from transformers.video_utils import VideoMetadata

        metadata = VideoMetadata(
            total_num_frames=len(frames), fps=_sampled_fps(frames), frames_indices=list(range(len(frames))),
        )
        sizing: dict[str, Any] = {"cap_pixels_per_frame": True}  # qwen-vl-utils' per-frame pixel cap
        if exact_area is not None:
            sizing = {"cap_pixels_per_frame": False, "size": {"shortest_edge": exact_area, "longest_edge": exact_area}}
        batch = self.processor.video_processor(
            videos=[frames.pixels], video_metadata=[metadata], input_data_format="channels_last",
            do_sample_frames=False, return_tensors="pt", **sizing,
        )
        return batch["pixel_values_videos"].to(self.device, self.dtype), batch["video_grid_thw"].to(self.device)

    def native_grid(self, frames: Frames) -> tuple[int, int]:
        """(height, width) in LLM tokens that encode_frames gives these frames: the processor's own smart_resize with
        qwen-vl-utils' per-frame pixel cap (as Qwen2VLVideoProcessor.resize computes it), from the sizes alone."""
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import smart_resize

        vp = self.processor.video_processor
        factor = vp.patch_size * vp.merge_size
        height, width = frames.pixels.shape[1:3]
        total = int(vp.max_video_tokens * factor * factor * 0.9)
        cap = max(min(vp.size["longest_edge"], total * vp.temporal_patch_size // len(frames)),
                  int(vp.size["shortest_edge"] * 1.05))
        h, w = smart_resize(height, width, factor=factor, min_pixels=vp.size["shortest_edge"], max_pixels=cap)
        return h // factor, w // factor

    def coarse_grid(self, frames: Frames, downscale: int) -> tuple[int, int]:
        """The token grid encode_frames_coarse gives: native_grid's sides ÷ downscale, rounded half up, at least 1
        (exactly 1/downscale² of the tokens when downscale divides both sides)."""
        if downscale < 1:
            raise ValueError(f"{self.name}: coarse_encode downscale must be >= 1, got {downscale}")
        return tuple(max(1, (2 * n + downscale) // (2 * downscale)) for n in self.native_grid(frames))  # type: ignore

    def encode_frames_coarse(self, frames: Frames, downscale: int) -> EncodedVideo:
        """encode_frames at a smaller pixel budget per frame (hook coarse_encode): the frames are resized (bicubic,
        antialiased, as the processor's own resize) to exactly coarse_grid × (patch · merge) pixels, which the
        processor then keeps (min = max pixels = that area, no cap), so `grid` is (T/2, h', w') and M-RoPE places
        each token on the coarser grid."""
        if len(frames) == 0:
            raise ValueError("encode_frames_coarse needs at least one frame")
        if downscale == 1:
            return self.encode_frames(frames)
        vp = self.processor.video_processor
        factor = vp.patch_size * vp.merge_size
        h, w = self.coarse_grid(frames, downscale)
        video = torch.from_numpy(frames.pixels).permute(0, 3, 1, 2).float()
        small = torch.nn.functional.interpolate(video, size=[h * factor, w * factor], mode="bicubic", antialias=True)
        small = small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        encoded = self._encode(dataclasses.replace(frames, pixels=small), exact_area=h * w * factor * factor)
        if encoded.grid[1:] != (h, w):  # type: ignore[index]
            raise RuntimeError(f"{self.name}: the processor resized the coarse frames to {encoded.grid}, not {h}×{w}")
        return encoded

    def encode_frames(self, frames: Frames) -> EncodedVideo:
        """Official path (video processor → ViT with window attention → 2×2 merger): [T/2, h·w, C] with the grid
        of LLM tokens (T/2, h, w)."""
        if len(frames) == 0:
            raise ValueError("encode_frames needs at least one frame")
        return self._encode(frames)

    def _encode(self, frames: Frames, exact_area: int | None = None) -> EncodedVideo:
        with torch.inference_mode():
            pixels, grid = self._video_inputs(frames, exact_area)
            tokens = self.model.model.get_video_features(pixels, grid, return_dict=True).pooler_output[0]
        rows, height, width = (int(grid[0, 0]), int(grid[0, 1]) // self.merge, int(grid[0, 2]) // self.merge)
        return EncodedVideo(tokens.reshape(rows, height * width, self.hidden_size), tuple(frames.timestamps_s),
                            self.frames_per_row, (rows, height, width))

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

    def video_positions(self, ids: list[int], at: int, encoded: EncodedVideo) -> torch.Tensor:
        """M-RoPE positions [3, n] of the chat with all of `encoded` at `at`: the model's own `get_rope_index`,
        with the temporal row of video tokens set from the real frame timestamps."""
        if encoded.grid is None:
            raise ValueError(f"{self.name}: the encoded video has no grid (it is not an encoding of this backbone)")
        rows, height, width = encoded.grid
        n = rows * height * width
        full = torch.tensor([ids[:at] + [self.video_token_id] * n + ids[at + 1 :]], device=self.device)
        types = (full == self.video_token_id).int() * 2  # 0 text, 1 image, 2 video
        thw = torch.tensor([[rows, height * self.merge, width * self.merge]], device=self.device)  # in patches
        positions, _ = self.model.model.get_rope_index(full, types, video_grid_thw=thw)
        positions = positions[:, 0]
        timestamps, group = encoded.timestamps_s, encoded.frames_per_row
        group_start = torch.tensor([timestamps[min(g * group, len(timestamps) - 1)] for g in range(rows)],
                                   dtype=torch.float64)
        ticks = torch.floor((group_start - group_start[0]) * self.tokens_per_second + 1e-6).long()
        positions[0, at : at + n] = at + ticks.repeat_interleave(n // rows).to(self.device)
        return positions

    def _inputs(self, visual: VisualSequence, prompt: Prompt) -> PromptInputs:
        """The chat with the visual tokens at the video placeholder, each at the M-RoPE position of its encoded row
        (`visual.rows` of `visual.source`); without rows the positions are left out (generate refuses them)."""
        tokens = self._visual_tokens(visual)
        ids, at = chat_ids(self.tokenizer, prompt, {"type": "video"}, self.video_token_id, VIDEO_PAD)
        embeds = self._splice(ids[:at], tokens, ids[at + 1 :])
        positions = None
        if not len(visual):  # no video in the chat (blind): text-only M-RoPE, all three axes the 1-D position
            positions = torch.arange(embeds.shape[1], device=self.device).expand(3, 1, -1)
        elif visual.rows is not None and visual.source is not None:
            full = self.video_positions(ids, at, visual.source)
            n_full = visual.source.flat.shape[0]
            rows = visual.rows.to(self.device)
            if rows.numel() and not 0 <= int(rows.min()) <= int(rows.max()) < n_full:
                raise ValueError(f"token rows must lie in [0, {n_full}), got [{int(rows.min())}, {int(rows.max())}]")
            positions = torch.cat([full[:, :at], full[:, at + rows], full[:, at + n_full :]], dim=1)[:, None, :]
        return PromptInputs(embeds, range(at, at + len(visual)), len(visual), len(ids) - 1, positions)


def _sampled_fps(frames: Frames) -> float:
    """Frames per second of the sample itself (what Qwen's processor calls `sampled_fps`)."""
    if len(frames) < 2:
        return 1.0
    span = frames.timestamps_s[-1] - frames.timestamps_s[0]
    return (len(frames) - 1) / span if span > 0 else 1.0
