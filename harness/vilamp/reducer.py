"""DFM as a token reducer: keyframes keep their grids, every other frame becomes one merged token.

Patch features are the backbone's own: `encode_patches` (unpooled, when the backbone has it — ViLAMP pools
DFM over all 729 projected SigLIP patches) or else `encode_frames`; keyframe tokens are `encode_frames`'
pooled grids. The scorer is the backbone's learned one (`dfm_scorer`, the official model) or the
training-free `CosineScorer` with the question embedded by the backbone's own LLM embeddings.

A backbone whose `encode_frames` row covers `frames_per_group` frames (Qwen2.5-VL: 2) is merged per temporal group:
a group holding a DKS keyframe keeps its grid, every other group becomes one token. A backbone with the
"token_positions" hook (Qwen2.5-VL's M-RoPE) is told which encoded row each output token stands for; a merged token
takes its largest-weight row's position ("it sits where most of its weight comes from").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from harness.core.config import ConfigError
from harness.core.records import Frames
from harness.methods.reduction import Hook, ReductionContext
from harness.vilamp.assembly import assemble
from harness.vilamp.dfm import ALPHA_DEFAULT, LAMBDA_DEFAULT, CosineScorer, PatchScorer, merge, reference_positions
from harness.video.streaming import CHUNK, FrameSource, chunks


@dataclass(frozen=True)
class DFMReducer:
    alpha: float = ALPHA_DEFAULT
    lam: float = LAMBDA_DEFAULT
    official_indexing: bool = False  # reproduce the released code's reference-frame bug (reproduction aid)
    chunk: int = CHUNK
    name: str = "dfm"
    hook: Hook = "visual"

    def __post_init__(self) -> None:
        if self.alpha <= 0 or self.chunk < 1:
            raise ConfigError(f"dfm: alpha must be > 0 and chunk >= 1 (got alpha={self.alpha}, chunk={self.chunk})")

    def scorer(self, ctx: ReductionContext) -> PatchScorer:
        if hasattr(ctx.backbone, "dfm_scorer"):
            return ctx.backbone.dfm_scorer(ctx.sample.question)
        query = ctx.backbone.embed_text(ctx.sample.question).float().mean(0)  # question in LLM input space
        return CosineScorer(query, self.alpha, self.lam)

    def layout(self, ctx: ReductionContext) -> tuple[list[bool], list[int], list[int]]:
        """(is_keyframe per position, keyframe positions, reference position per position), a position being one
        row of `encode_frames`: a frame, or a temporal group of `frames_per_group` frames holding any keyframe."""
        keyframes = set(ctx.selection.keyframes)
        if not keyframes:
            raise ValueError("dfm needs a keyframe selector (e.g. dks); the selection has no keyframes")
        frame_is_kf = [i in keyframes for i in ctx.frames.indices]
        group = getattr(ctx.backbone, "frames_per_group", 1)  # an odd tail group is padded with its last frame
        is_kf = [any(frame_is_kf[g : g + group]) for g in range(0, len(frame_is_kf), group)]
        positions = [p for p, kf in enumerate(is_kf) if kf]
        return is_kf, positions, reference_positions(len(is_kf), positions, self.official_indexing)

    def reduce(self, tokens: torch.Tensor, ctx: ReductionContext) -> torch.Tensor:
        """In-memory path: `tokens` [N, M, C] serve both as keyframe grids and as the patches DFM merges."""
        is_kf, positions, refs = self.layout(ctx)
        non_kf = [p for p, kf in enumerate(is_kf) if not kf]
        scores = self.scorer(ctx).scores(tokens[non_kf], tokens[[refs[p] for p in non_kf]])
        if "token_positions" in getattr(ctx.backbone, "hooks", ()):
            # flat rows of `tokens`: a key grid keeps its own, a merged token takes its argmax-weight patch's row
            grid_rows = torch.arange(tokens.shape[0] * tokens.shape[1]).reshape(tokens.shape[:2])
            argmax_rows = grid_rows[non_kf].gather(1, scores.argmax(-1, keepdim=True).cpu()).flatten()
            ctx.backbone.set_token_rows(assemble(is_kf, grid_rows[positions], argmax_rows))
        return assemble(is_kf, tokens[positions], merge(tokens[non_kf], scores))

    def reduce_stream(self, source: FrameSource, ctx: ReductionContext) -> torch.Tensor:
        """Streaming path: anchor grids (keyframes + references) first, then non-keyframes a chunk at a time.

        A "token_positions" backbone places tokens by rows of one `encode_frames` call over the whole video (and
        groups consecutive frames), so it is encoded in one piece and reduced in memory: no 10K-frame streaming.
        """
        backbone = ctx.backbone
        indices = ctx.frames.indices
        if "token_positions" in getattr(backbone, "hooks", ()):
            return self.reduce(backbone.encode_frames(source.read(indices)), ctx)
        is_kf, positions, refs = self.layout(ctx)
        non_kf = [p for p, kf in enumerate(is_kf) if not kf]
        anchors = sorted(set(positions) | {refs[p] for p in non_kf if refs[p] != p})
        grids: dict[int, torch.Tensor] = {}
        keyframe_tokens = []
        for part in chunks(anchors, self.chunk):
            frames = source.read([indices[p] for p in part])
            patches = patch_features(backbone, frames)
            grids.update(zip(part, patches, strict=True))
            kf_rows = [r for r, p in enumerate(part) if is_kf[p]]
            if kf_rows:
                keyframe_tokens.append(pooled(backbone, patches[kf_rows]))
        # ViLAMP's single_token variant: a non-keyframe is an MLP of its CLIP image embedding, no patch merging.
        scorer = None if getattr(backbone, "composer_type", None) == "single_token" else self.scorer(ctx)
        merged = []
        for part in chunks(non_kf, self.chunk):
            frames = source.read([indices[p] for p in part])
            if scorer is None:
                merged.append(backbone.non_keyframe_tokens(frames))
                continue
            patches = patch_features(backbone, frames)
            references = torch.stack([grids[refs[p]] if refs[p] != p else patches[r] for r, p in enumerate(part)])
            merged.append(merge(patches, scorer.scores(patches, references)))
        hidden = keyframe_tokens[0].shape[-1]
        merged_t = torch.cat(merged) if merged else torch.zeros(0, hidden, dtype=keyframe_tokens[0].dtype)
        return assemble(is_kf, torch.cat(keyframe_tokens), merged_t)


def patch_features(backbone: Any, frames: Frames) -> torch.Tensor:
    encode = getattr(backbone, "encode_patches", backbone.encode_frames)
    return encode(frames)


def pooled(backbone: Any, patches: torch.Tensor) -> torch.Tensor:
    """Keyframe tokens from patch features: the backbone's pooling when patches are unpooled, else as they are."""
    pool = getattr(backbone, "pool_patches", None)
    return pool(patches) if pool is not None else patches
