"""The backbone hook vocabulary: what a frame selector or token reducer may ask of a backbone beyond
`encode_frames` and `generate`.

A backbone class lists the hooks it implements in `hooks`; a selector or reducer lists the hooks it needs in
`requires` (an instance property, since needs can depend on arguments: DKS with `encoder="backbone"` needs the
backbone's own image-text encoder). The driver's preflight compares the two before any worker starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

HOOKS: dict[str, str] = {
    "embed_text": "embed_text(text) -> [n, C]: LLM input embeddings of text (no special tokens)",
    "prompt_embeds": "prompt_embeds(visual: VisualSequence, prompt) -> (embeds [1, n, C], n_visual, n_text)",
    "vision_attention": "vision_attention(frames) -> (received [T, M], keys [T, M, d]) on encode_frames' grid: the "
                        "mean attention each vision token receives and head-averaged keys (VisionZip)",
    "vision_features": "vision_features(frames) -> (pre [T, P, Cv], post [T, M, C]): vision-encoder patch features "
                       "at the feature layer and the projected tokens",
    "llm_prune": "generate() honours an LlmPrune in VisualSequence.llm_prune: visual tokens pruned inside the LLM, in "
                 "stages (FastV, PyramidDrop)",
    "llm_fuse": "generate() honours an LlmFuse in VisualSequence.llm_prune: visual tokens merged across frames at the "
                "same patch position, then pruned, in the first LLM layers (FrameFusion)",
    "patch_features": "encode_patches(frames) -> [T, P, C] unpooled projected patches and pool_patches([T, P, C]) -> "
                      "[T, M, C], the pooling encode_frames applies (ViLAMP's DFM merges all 729 patches)",
    "image_text_encoder": "image_text_encoder: the backbone's own image-text encoder (ViLAMP's CLIP) for selectors",
    "dfm_scorer": "dfm_scorer(question) -> PatchScorer: the checkpoint's learned DFM scoring (ViLAMP sig_pooling)",
    "non_keyframe_tokens": "non_keyframe_tokens(frames) -> [T, C]: the checkpoint's own one-token-per-frame map "
                           "(ViLAMP single_token)",
    "coarse_encode": "encode_frames_coarse(frames, downscale) -> EncodedVideo: encode_frames with each frame's token "
                     "grid side divided by `downscale` (key clips: more frames at fewer tokens each). LLaVA-OV averages "
                     "its pooled token grid downscale × downscale (which must divide it); Qwen2.5-VL resizes "
                     "the frames to the merged-patch grid of half-up-rounded sides (≥ 1), `grid` set accordingly. "
                     "Not offered by ViLAMP's backbone (not implemented there), vLLM (its engine runs its own "
                     "processor on the frames) or fixed-cost (one mean-colour token per frame, no grid)",
}


class HookUnavailable(RuntimeError):
    """A method asked a backbone for a hook it does not offer."""


def missing_hooks(needed: Iterable[str], offered: Iterable[str]) -> list[str]:
    unknown = sorted(set(needed) - set(HOOKS))
    if unknown:
        raise ValueError(f"unknown hook(s) {unknown}; the vocabulary is {sorted(HOOKS)}")
    return sorted(set(needed) - set(offered))


def require_hook(backbone: Any, hook: str, method: str) -> None:
    """Raise HookUnavailable (one line) unless `backbone` lists `hook` in its `hooks`."""
    offered = backbone.hooks
    if missing_hooks([hook], offered):
        raise HookUnavailable(
            f"{method} needs the backbone hook {hook!r}, which backbone {backbone.name!r} does not offer "
            f"(it offers: {', '.join(sorted(offered)) or 'none'}); pick a backbone that implements it"
        )
