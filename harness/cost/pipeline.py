"""One sample's path through a backbone as the stages that hold memory (`Phase`) and the FLOPs of each part, for the
harness's two code paths: a whole-video encode (LLaVA-OV / LLaVA-Video, Qwen2.5-VL; a keyframe selector chooses
first, in the CPU decode worker), and ViLAMP's stream (harness.vilamp: CLIP over every frame for DKS, then the
backbone's tower a chunk at a time, keyframe grids and one merged token per other frame).

Where a selector's encoder runs: a keyframe selector's in the decode worker, and DKS's (`vilamp-tf`) in the model
worker, both on the CPU (`load_encoder` places them there); ViLAMP's own CLIP is part of the model, on its device.
Their FLOPs are `selector` (not in the prefill time) unless they run on the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.core.records import LlmFuse, LlmPrune
from harness.cost import flops, memory
from harness.cost.architectures import CLIP_B32, Architecture, Tower, encoder_tower
from harness.cost.memory import F32, Phase
from harness.cost.workload import Workload
from harness.methods.encoders import CHUNK as ENCODER_CHUNK
from harness.model.preflight import build_methods
from harness.video.streaming import CHUNK as STREAM_CHUNK
from harness.vilamp.model import VISION_CHUNK

CLIP_B32_EMBEDDING = 512  # openai/clip-vit-base-patch32 projection_dim: the [N, D] float32 embeddings DKS keeps
WHOLE_TOKENS = ("none", "fastv", "pyramiddrop", "framefusion")  # reducers passing the encoding itself to the LLM


@dataclass(frozen=True)
class Run:
    """What a workload costs: its memory phases in order and its FLOPs by part."""

    phases: tuple[Phase, ...]
    vision: float  # the backbone's tower(s) on the model's device (ViLAMP: its CLIP too)
    projector: float  # projector / merger, DFM's maps and merging
    prefill: float
    per_token: float
    selector: float  # a selector's own encoder, on the CPU
    sequence: int  # tokens the prefill reads
    notes: tuple[str, ...]  # what this row's figures leave out or approximate beyond the common approximations


def run(w: Workload, arch: Architecture, b: int, eager: bool, text: int, vilamp: bool) -> Run:
    """The phases and FLOPs of `w` on `arch` at `b` bytes per element, with `text` prompt tokens; `vilamp`: the ViLAMP
    backbone (its own CLIP on the device, learned DFM maps, SigLIP keeping every hidden state)."""
    phases, selector = _selection(w, arch, vilamp)
    if w.streamed:
        more, vision, projector, host, held = _stream(w, arch, b, eager, vilamp)
    else:
        more, vision, projector, host, held = (_qwen if arch.tokens_per_frame is None else _llava)(w, arch, b, eager)
    n = w.visual_tokens + text
    if vilamp:
        n = min(n, arch.llm.context_window)  # ViLAMP cuts its sequence at tokenizer_model_max_length
    counts, masks, extra = _llm_counts(w, arch, n)
    embeds = n * arch.llm.hidden * b
    phases += more
    phases.append(Phase("prompt splice", held + 2 * embeds, 0.0, host))
    phases += memory.llm_prefill(counts, arch.llm, b, held + embeds, host, masks, eager)
    prefill = flops.llm_prefill(counts, arch.llm) + extra
    return Run(tuple(phases), vision, projector, prefill, flops.llm_step(counts, arch.llm), selector, n,
               _notes(w, arch))


def _notes(w: Workload, arch: Architecture) -> tuple[str, ...]:
    reducer, notes = w.spec.reducer.name, []
    if isinstance(w.request, LlmFuse):
        notes.append("FrameFusion as one prune after layer 0 to its mean visual share (its merging depends on the "
                     "video)")
    modelled = WHOLE_TOKENS + ("dfm", "blind") + (("visionzip", "fastvid", "flashvid") if arch.tokens_per_frame else ())
    if reducer not in modelled:
        notes.append(f"{reducer}'s own workspace is not modelled, only its output")
    if w.keyframes and arch.tokens_per_frame is None:
        notes.append("training-free DFM over the whole Qwen2.5-VL encoding at ~13 copies of its tokens")
    return tuple(notes)


def _llm_counts(w: Workload, arch: Architecture, n: int) -> tuple[list[int], list[tuple[int, int]], float]:
    """Tokens entering each LLM layer, the runs of layers given an explicit causal mask (first layer, tokens), and
    the FLOPs of FastV's ranking."""
    layers, request = arch.llm.layers, w.request
    if isinstance(request, LlmPrune):
        kept = [n - w.visual_tokens + c for c in w.in_llm]
        counts = memory.stages(layers, list(zip(request.layers, kept)), n)
        ranks = [layer - 1 if request.rank == "previous" else layer for layer in request.layers]
        starts = {0} | set(ranks) | set(request.layers)  # where prefill_pruned's run() calls begin
        return counts, [(s, counts[s]) for s in sorted(starts) if s < layers], \
            sum(flops.last_token_attention(counts[r], arch.llm) for r in ranks)
    if isinstance(request, LlmFuse):  # FrameFusion as one prune after layer 0 to its mean visual share (approximate)
        share = (request.cost * layers - 1) / (layers - 1) if layers > 1 else 1.0
        kept = n - w.visual_tokens + math.ceil(max(share, 0.0) * w.visual_tokens)
        counts = memory.stages(layers, [(1, kept)], n)
        return counts, [(0, n), (1, kept)], flops.last_token_attention(n, arch.llm)
    return [n] * layers, [], 0.0


def _selection(w: Workload, arch: Architecture, vilamp: bool) -> tuple[list[Phase], float]:
    """A selector's own encoder over its candidates, on the CPU: a keyframe selector holds its decoded pool, DKS
    decodes a chunk at a time. (ViLAMP's own CLIP runs on the device: `_stream`.)"""
    if not w.candidates or vilamp:
        return [], 0.0
    clip = encoder_tower(w.selector_encoder or "clip-vit-b32")
    h, wd = w.decode
    chunk = min(ENCODER_CHUNK, w.candidates)
    pool = (chunk if w.keyframes else w.candidates) * h * wd * 3  # DKS streams; a keyframe selector holds its pool
    side = (clip.image_size, clip.image_size)
    seq = (clip.image_size // clip.patch) ** 2 + 1
    proc, out = memory.processor(chunk, w.decode, side)
    work = max(proc, out + memory.vit_layers(chunk, seq, clip, F32, False))
    phase = Phase("selector's encoder (CPU)", 0.0, 0.0, pool + work + w.candidates * _embedding(clip) * F32)
    return [phase], flops.vit(w.candidates, seq, clip)


def _llava(w: Workload, arch: Architecture, b: int, eager: bool):
    """LLaVA-OV's encode_frames over every kept frame at once: (phases, vision, projector FLOPs, host bytes held, device
    bytes held into the LLM)."""
    tower, h, wd = arch.vision, *w.decode
    frames = w.encoded * h * wd * 3  # the uint8 frames the model worker holds through the sample
    side, grid = tower.image_size, tower.image_size // tower.patch
    patches = grid * grid
    proc, out = memory.processor(w.encoded, w.decode, (side, side), frames)
    pixels = out * b // F32
    hidden = w.encoded * patches * tower.hidden * b
    wide = w.encoded * patches * max(arch.projector[1:]) * b
    pooled = w.encoded * (arch.tokens_per_frame or 0) * arch.llm.hidden * b
    phases = [Phase("image processor", 0.0, 0.0, proc),
              Phase("pixels to the device", pixels, 0.0, frames + (out if b < F32 else 0)),
              Phase("vision tower", pixels + memory.vit_layers(w.encoded, patches, tower, b, eager), 0.0, frames),
              Phase("projector", pixels + 2 * hidden + 2 * wide, 0.0, frames),
              Phase("pooling", pixels + 2 * hidden + 2 * wide + pooled, 0.0, frames)]
    vision = flops.vit(w.encoded, patches, tower)
    projector = flops.mlp(w.encoded * patches, arch.projector)
    tokens = w.encoded * w.tokens_per_row * arch.llm.hidden * b  # key clips: the coarser grid
    if "vision_attention" in _requires(w):  # VisionZip, FastVID, FlashVID: the tower again with q and k of its last
        # layer (the feature layer) captured by hooks, then softmax(q·kᵀ) in float32
        scores = w.encoded * tower.heads * patches * patches
        phases.append(Phase("vision_attention: the tower again", tokens + pixels + 2 * hidden  # q, k captured
                            + memory.vit_layers(w.encoded, patches, tower, b, eager), 0.0, frames))
        phases.append(Phase("vision_attention: softmax(q·kᵀ) in float32", tokens + 2 * hidden + 2 * scores * F32, 0.0,
                            frames))
        vision += flops.vit(w.encoded, patches, tower) + 2 * scores * (tower.hidden // tower.heads)
    return phases, vision, projector, frames, tokens + _reduced(w, arch, b)


def _qwen(w: Workload, arch: Architecture, b: int, eager: bool):
    """Qwen2.5-VL's encode_frames: processor patches → ViT (window attention) → merger, all temporal groups at once."""
    tower, h, wd = arch.vision, *w.decode
    frames = w.encoded * h * wd * 3
    factor = tower.patch * tower.merge
    padded = w.rows * tower.temporal_patch  # an odd frame count is padded with the last frame
    proc, out = memory.processor(padded, w.decode, (w.grid[0] * factor, w.grid[1] * factor), frames, patchify=True)
    pixels = out * b // F32
    per_row = w.grid[0] * w.grid[1] * tower.merge ** 2
    patches = w.rows * per_row
    hidden = patches * tower.hidden * b
    tokens = w.rows * w.tokens_per_row * arch.llm.hidden * b
    merger = hidden + max(memory.rms_norm(hidden, b), 2 * hidden) + 2 * tokens  # + the window order undone: a copy
    phases = [Phase("image processor", 0.0, 0.0, proc),
              Phase("pixels to the device", pixels, 0.0, frames + (out if b < F32 else 0)),
              Phase("vision tower", pixels + memory.qwen_vit_layers(patches, per_row, tower, b, eager), 0.0, frames),
              Phase("merger", pixels + merger, 0.0, frames)]
    vision = flops.qwen_vit(w.rows, w.grid, tower)
    projector = flops.mlp(w.rows * w.tokens_per_row, arch.projector)
    if w.keyframes:  # training-free DFM in memory over the whole encoding: its rows gathered, scored in float32
        phases.append(Phase("DFM over the whole encoding", 13 * tokens, 0.0, frames))
        projector += 4 * w.rows * w.tokens_per_row * arch.llm.hidden
    return phases, vision, projector, frames, tokens + _reduced(w, arch, b)


def _stream(w: Workload, arch: Architecture, b: int, eager: bool, vilamp: bool):
    """harness.vilamp's stream: DKS over every frame's CLIP embedding, the keyframe grids, then every other frame a
    chunk at a time through the tower and DFM: the learned maps on ViLAMP (over all 729 projected patches, SigLIP
    keeping every hidden state, 60 frames per forward), cosine scores on a frozen backbone (its pooled tokens)."""
    h, wd = w.decode
    tower, k, width = arch.vision, w.keyframes, arch.llm.hidden
    chunk = min(STREAM_CHUNK, w.frames)
    raw = chunk * h * wd * 3
    clip: Tower = arch.encoder if vilamp else encoder_tower(w.selector_encoder or "clip-vit-b32")
    embeddings = w.frames * _embedding(clip) * F32
    phases, vision = [], 0.0
    if vilamp:  # ViLAMP's own CLIP, on the model's device
        seq = (clip.image_size // clip.patch) ** 2 + 1
        proc, out = memory.processor(chunk, w.decode, (clip.image_size, clip.image_size), raw)
        phases.append(Phase("DKS: ViLAMP's CLIP over a chunk", out * b // F32
                            + memory.vit_layers(chunk, seq, clip, b, eager), 0.0, embeddings + max(proc, raw + out)))
        vision += flops.vit(w.frames, seq, clip)
    grid = tower.image_size // tower.patch
    patches = grid * grid if vilamp else w.tokens_per_row
    sub = min(VISION_CHUNK if vilamp else STREAM_CHUNK, chunk)
    s_proc, s_out = memory.processor(sub, w.decode, (tower.image_size, tower.image_size), raw)
    s_hidden = sub * grid * grid * tower.hidden * b
    s_wide = sub * grid * grid * max(arch.projector[1:]) * b
    encode = s_out * b // F32 + max(memory.vit_layers(sub, grid * grid, tower, b, eager, keep_all=vilamp),
                                    2 * s_hidden + 2 * s_wide + sub * w.tokens_per_row * width * b)
    q = chunk * patches * width * b  # one chunk's patch features
    held = k * patches * width * b + k * w.tokens_per_row * width * b + (w.frames - k) * width * b  # grids, merged
    scoring = 7 * q if vilamp else 12 * q  # learned: patches, refs, ik, k, cosine's 3; cosine: float32 copies
    # the previous chunk's patches and references stay alive until this chunk's replace them
    phases.append(Phase("stream: image processor", held + 2 * q, 0.0, embeddings + s_proc))
    phases.append(Phase("stream: the tower over a chunk", held + 2 * q + max(encode, 2 * q), 0.0, embeddings + raw))
    phases.append(Phase("stream: DFM over a chunk", held + scoring, 0.0, embeddings + raw))
    vision += flops.vit(w.frames, grid * grid, tower)
    others = (w.frames - k) * patches
    projector = flops.mlp(w.frames * grid * grid, arch.projector) + 2 * others * width \
        + (3 * 2 * others * width * width if vilamp else 2 * others * width)
    return phases, vision, projector, embeddings, w.visual_tokens * width * b


def _embedding(clip: Tower) -> int:
    """A CLIP's joint-space width: ViT-B/32's 512; the small CLIPs here project to their own width."""
    return CLIP_B32_EMBEDDING if clip == CLIP_B32 else clip.hidden


def _requires(w: Workload) -> frozenset[str]:
    return build_methods(w.spec)[1].requires


def _reduced(w: Workload, arch: Architecture, b: int) -> float:
    """A reducer's own output beside the encoding (0 when the encoding itself enters the LLM)."""
    return 0.0 if w.spec.reducer.name in WHOLE_TOKENS else w.visual_tokens * arch.llm.hidden * b
