"""What a spec runs at N frames, from the methods' own counting: the frames its selector reads and embeds, the frames
its backbone encodes, and the visual tokens entering the LLM (and left inside it).

What N means per selector kind (`at_frames`):
- uniform: N frames are fed (n = N; an fps spec is put at N frames). Budget-matched uniform (`budget: vilamp`)
  takes the frames whose tokens match ViLAMP's at N sampled frames.
- keyframe selectors (topk, aks, bolt, adardkey, keyclips): N candidate frames are decoded and embedded by the
  selector's encoder; the k it keeps are encoded whole (key clips: K·L frames at a coarser grid).
- DKS (ViLAMP, `dks`/`dks-stream`): N frames are sampled (max_frames = N), every one is embedded by the selector's
  CLIP and encoded by the backbone's tower; K = 32 stay whole, the other N − K become one merged token each.
Frames are decoded at `decode` = (height, width): the harness reads videos at their stored size, so this is the
stored size assumed (a 360p stream by default). Qwen2.5-VL's tokens per frame follow it (the processor's
smart_resize with qwen-vl-utils' per-frame cap, as `Qwen25VLBackbone.native_grid` computes it).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from transformers import Qwen2VLVideoProcessor
from transformers.models.qwen2_vl.video_processing_qwen2_vl import smart_resize

from baselines.uniform import VILAMP_KEYFRAMES, frames_for_budget
from harness.backbones import BACKBONES
from harness.core.config import ConfigError
from harness.core.records import LlmFuse, LlmPrune
from harness.cost.architectures import Architecture, local_checkpoint
from harness.methods.reduction import InLlmReducer
from harness.model.preflight import build_methods
from harness.model.specs import Component, ModelSpec
from harness.vilamp import vilamp_visual_tokens

DEFAULT_DECODE = (360, 640)  # (height, width) of the decoded frames: an assumed 360p stream
KEYFRAME_SELECTORS = ("topk", "aks", "bolt", "adardkey", "keyclips")
DKS_SELECTORS = ("dks", "dks-stream")


@dataclass(frozen=True)
class Workload:
    spec: ModelSpec  # the spec put at N frames
    frames: int  # N
    reading: str  # what N means for this spec
    candidates: int  # frames the selector's own encoder embeds (0: no encoder)
    selector_encoder: str | None  # its ENCODERS name; "backbone": the model's own CLIP (ViLAMP)
    encoded: int  # frames through the backbone's vision tower
    rows: int  # encoded rows (Qwen2.5-VL: temporal groups of 2 frames)
    grid: tuple[int, int]  # LLM tokens per row, (height, width), after the projector's merge / pooling
    tokens_per_row: int  # visual tokens per encoded row as reduced by the selector's grid (key clips: coarser)
    visual_tokens: int  # entering the LLM, separators included
    in_llm: tuple[int, ...]  # after each in-LLM pruning stage, separators included
    request: LlmPrune | LlmFuse | None
    keyframes: int  # kept whole by DKS (ViLAMP); 0 otherwise
    streamed: bool  # decoded, encoded and merged a chunk at a time (ViLAMP's streaming path)
    decode: tuple[int, int]


def at_frames(spec: ModelSpec, n: int) -> tuple[ModelSpec, str]:
    """`spec` with its selector put at `n` frames, and what that means (see the module docstring)."""
    if n < 1:
        raise ConfigError(f"--frames: a frame count must be >= 1, got {n}")
    sel, args = spec.selector.name, dict(spec.selector.args)
    if sel == "uniform":
        if args.get("budget") == "vilamp":
            return spec, "uniform frames matching ViLAMP's visual tokens at N sampled frames"
        args.update(n=n, fps=None, budget=None)
        args.pop("tokens_per_frame", None)
        reading = "N frames fed"
    elif sel in KEYFRAME_SELECTORS:
        args["max_candidates"] = n
        reading = f"N candidate frames embedded by {args.get('encoder', 'clip-vit-b32')}, the kept ones encoded"
    elif sel in DKS_SELECTORS:
        args["max_frames"] = n
        reading = f"N frames sampled and encoded, K={args.get('k', 32)} kept whole, the rest 1 token each"
    else:
        raise ConfigError(f"model {spec.name!r}: the cost model does not know what N frames means for selector "
                          f"{sel!r}; it knows uniform, {', '.join(KEYFRAME_SELECTORS + DKS_SELECTORS)}")
    return dataclasses.replace(spec, name=f"{spec.name}@{n}f", selector=Component(sel, args)), reading


def workload(spec: ModelSpec, n: int, arch: Architecture, decode: tuple[int, int] = DEFAULT_DECODE) -> Workload:
    """What `spec` runs at `n` frames on `arch`, frames decoded at `decode`."""
    placed, reading = at_frames(spec, n)
    selector, reducer = build_methods(placed)
    backbone = BACKBONES.get(spec.backbone.name)
    separators = backbone.separator_tokens
    request = reducer.request() if isinstance(reducer, InLlmReducer) else None
    name = placed.selector.name
    encoder = placed.selector.args.get("encoder", "clip-vit-b32") if name in KEYFRAME_SELECTORS + DKS_SELECTORS \
        else None
    per_frame = backbone.tokens_per_frame_for(**spec.backbone.args)
    if name in DKS_SELECTORS:
        keyframes = min(selector.k, n)
        encoded, candidates = n, n
    else:
        keyframes = 0
        candidates = n if encoder else 0
        if name == "uniform" and placed.selector.args.get("budget") == "vilamp":
            target = vilamp_visual_tokens(n, min(VILAMP_KEYFRAMES, n), per_frame)
            encoded = frames_for_budget(target, per_frame, selector.extra_tokens, n)
            placed = dataclasses.replace(placed, selector=Component("uniform", {"n": encoded}))
        else:
            framing = selector.frame_budget(per_frame)
            kept = framing[0] if framing else selector.max_frames  # AKS at a non-power-of-two M: at most M
            encoded = min(kept, n)
    downscale = getattr(selector, "grid_downscale", 1) if name == "keyclips" else 1
    if arch.tokens_per_frame is None:  # Qwen2.5-VL: the grid follows the frame size and the frame count
        native = qwen_grid(spec, arch, encoded, decode)
        grid = tuple(max(1, (2 * s + downscale) // (2 * downscale)) for s in native) if downscale > 1 else native
        rows = math.ceil(encoded / arch.vision.temporal_patch)
    else:
        side = math.isqrt(arch.tokens_per_frame)
        grid, rows = (side // downscale, side // downscale), encoded
    per_row = grid[0] * grid[1]
    if name in DKS_SELECTORS:
        key_rows = min(keyframes, rows)  # keyframes in distinct rows (temporal groups): the most a row count allows
        tokens = key_rows * per_row + (rows - key_rows) + separators
    else:
        counted = reducer.visual_tokens(rows, per_row)  # as harness.model.budget counts: separators after any
        if counted is None:
            raise ConfigError(f"model {spec.name!r}: reducer {spec.reducer.name!r} has no token count known before a "
                              "run, so the cost model cannot size its sequence")
        tokens = counted + (separators if counted else 0)
    in_llm = tuple(c + separators for c in request.counts(tokens - separators)) if isinstance(request, LlmPrune) else ()
    return Workload(placed, n, reading, candidates, encoder, encoded, rows, grid, per_row, tokens, in_llm, request,
                    keyframes, selector.streaming and backbone.placement == "sequential", decode)


def qwen_grid(spec: ModelSpec, arch: Architecture, frames: int, decode: tuple[int, int]) -> tuple[int, int]:
    """(height, width) in LLM tokens of `frames` frames of size `decode` on Qwen2.5-VL: smart_resize with the per-frame
    pixel cap of qwen-vl-utils (`Qwen25VLBackbone.native_grid`). The video processor's limits are the checkpoint's
    own when it is on disk, else transformers' Qwen2VLVideoProcessor defaults (= qwen-vl-utils' VIDEO_MIN_PIXELS,
    VIDEO_MAX_PIXELS and 128,000-token total)."""
    directory = local_checkpoint(spec)
    limits = {"size": Qwen2VLVideoProcessor.size, "max_video_tokens": Qwen2VLVideoProcessor.max_video_tokens}
    if directory is not None and (directory / "processor_config.json").is_file():
        limits.update(json.loads((directory / "processor_config.json").read_text()).get("video_processor", {}))
    factor = arch.vision.patch * arch.vision.merge
    low, high = limits["size"]["shortest_edge"], limits["size"]["longest_edge"]
    total = int(limits["max_video_tokens"] * factor * factor * 0.9)
    cap = max(min(high, total * arch.vision.temporal_patch // max(frames, 1)), int(low * 1.05))
    h, w = smart_resize(*decode, factor=factor, min_pixels=low, max_pixels=cap)
    return h // factor, w // factor
