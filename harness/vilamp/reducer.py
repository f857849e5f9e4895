"""DFM as a token reducer: keyframes keep their grids, every other frame becomes one merged token.

Patch features are the backbone's own: unpooled projected patches when it offers the "patch_features" hook
(ViLAMP pools DFM over all 729 projected SigLIP patches), else `encode_frames`' tokens; keyframe tokens are the
pooled grids. The scorer is the backbone's learned one when it offers "dfm_scorer" (the official model), else the
training-free `CosineScorer` with the question embedded by the backbone's own LLM embeddings ("embed_text"); a
backbone offering "non_keyframe_tokens" (ViLAMP single_token) maps each non-keyframe to its token itself.

An encoded row that covers `frames_per_row` frames (Qwen2.5-VL: 2) is merged per temporal group: a group holding
a DKS keyframe keeps its grid, every other group becomes one token. Every output token declares the encoded row
it stands for (`VisualSequence.rows`): a key grid keeps its own rows, a merged token takes its largest-weight
patch's row ("it sits where most of its weight comes from"), which is what places it on an M-RoPE backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from harness.core.config import ConfigError
from harness.core.records import EncodedVideo, Frames, VisualSequence
from harness.methods.hooks import HookUnavailable
from harness.methods.reduction import ReductionContext
from harness.video.streaming import CHUNK, FrameSource, chunks
from harness.vilamp.assembly import assemble
from harness.vilamp.dfm import ALPHA_DEFAULT, LAMBDA_DEFAULT, CosineScorer, PatchScorer, merge, reference_positions


@dataclass(frozen=True)
class DFMReducer:
    alpha: float = ALPHA_DEFAULT
    lam: float = LAMBDA_DEFAULT
    official_indexing: bool = False  # reproduce the released code's reference-frame bug (reproduction aid)
    chunk: int = CHUNK
    name: ClassVar[str] = "dfm"
    requires: ClassVar[frozenset[str]] = frozenset({"embed_text"})  # the training-free scorer's question embedding
    emits_rows: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.alpha <= 0 or self.chunk < 1:
            raise ConfigError(f"dfm: alpha must be > 0 and chunk >= 1 (got alpha={self.alpha}, chunk={self.chunk})")

    def visual_tokens(self, frames: int, per_frame: int) -> None:
        return None  # keyframes keep per_frame tokens, the rest one each: it depends on how many DKS picks

    def scorer(self, ctx: ReductionContext) -> PatchScorer:
        if "dfm_scorer" in ctx.backbone.hooks:
            return ctx.backbone.dfm_scorer(ctx.sample.question)
        query = ctx.backbone.embed_text(ctx.sample.question).float().mean(0)  # question in LLM input space
        return CosineScorer(query, self.alpha, self.lam)

    def layout(self, ctx: ReductionContext, group: int = 1) -> tuple[list[bool], list[int], list[int]]:
        """(is_keyframe per position, keyframe positions, reference position per position), a position being one
        encoded row: a frame, or a temporal group of `group` frames holding any keyframe."""
        keyframes = set(ctx.selection.keyframes)
        if not keyframes:
            raise ValueError("dfm needs a keyframe selector (e.g. dks); the selection has no keyframes")
        frame_is_kf = [i in keyframes for i in ctx.frames.indices]
        # an odd tail group is padded with its last frame
        is_kf = [any(frame_is_kf[g : g + group]) for g in range(0, len(frame_is_kf), group)]
        positions = [p for p, kf in enumerate(is_kf) if kf]
        return is_kf, positions, reference_positions(len(is_kf), positions, self.official_indexing)

    def reduce(self, encoded: EncodedVideo, ctx: ReductionContext) -> VisualSequence:
        """In-memory path: the encoded rows [N, M, C] serve both as keyframe grids and as the patches DFM merges."""
        if "non_keyframe_tokens" in ctx.backbone.hooks:  # it would silently fall back to training-free merging
            raise HookUnavailable("dfm: this checkpoint maps non-keyframes itself (ViLAMP single_token), which only "
                                  "the streaming path does; pair dfm with the dks-stream selector")
        tokens = encoded.tokens
        is_kf, positions, refs = self.layout(ctx, encoded.frames_per_row)
        non_kf = [p for p, kf in enumerate(is_kf) if not kf]
        scores = self.scorer(ctx).scores(tokens[non_kf], tokens[[refs[p] for p in non_kf]])
        # flat rows of `tokens`: a key grid keeps its own, a merged token takes its argmax-weight patch's row
        grid_rows = torch.arange(tokens.shape[0] * tokens.shape[1]).reshape(tokens.shape[:2])
        argmax_rows = grid_rows[non_kf].gather(1, scores.argmax(-1, keepdim=True).cpu()).flatten()
        return VisualSequence(assemble(is_kf, tokens[positions], merge(tokens[non_kf], scores)),
                              rows=assemble(is_kf, grid_rows[positions], argmax_rows), source=encoded)

    def reduce_stream(self, source: FrameSource, ctx: ReductionContext) -> VisualSequence:
        """Streaming path: anchor grids (keyframes + references) first, then non-keyframes a chunk at a time.

        A backbone that places tokens by grid position needs rows of one `encode_frames` call over the whole video
        (and groups consecutive frames), so it is encoded in one piece and reduced in memory: no 10K-frame
        streaming. Elsewhere positions are sequential and the streamed sequence declares no rows.
        """
        backbone = ctx.backbone
        indices = ctx.frames.indices
        if backbone.placement == "grid":
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
        scorer = None if "non_keyframe_tokens" in backbone.hooks else self.scorer(ctx)
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
        return VisualSequence(assemble(is_kf, torch.cat(keyframe_tokens), merged_t))


def patch_features(backbone: Any, frames: Frames) -> torch.Tensor:
    if "patch_features" in backbone.hooks:
        return backbone.encode_patches(frames)
    return backbone.encode_frames(frames).tokens


def pooled(backbone: Any, patches: torch.Tensor) -> torch.Tensor:
    """Keyframe tokens from patch features: the backbone's pooling when patches are unpooled, else as they are."""
    return backbone.pool_patches(patches) if "patch_features" in backbone.hooks else patches
