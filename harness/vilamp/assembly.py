"""ViLAMP's visual sequence: keyframe grids and one merged token per non-keyframe, interleaved in time order."""

from __future__ import annotations

import torch


def vilamp_visual_tokens(n_frames: int, n_keyframes: int, tokens_per_keyframe: int) -> int:
    """Visual tokens entering the LLM: tokens_per_keyframe·K + (N − K) + 1 (the trailing image_newline).

    196·K + (N − K) + 1 for the 7B model (27×27 SigLIP grid pooled bilinearly to 14×14; notes/vilamp.md §2.3).
    """
    if not 0 <= n_keyframes <= n_frames:
        raise ValueError(f"need 0 <= n_keyframes <= n_frames, got K={n_keyframes}, N={n_frames}")
    return tokens_per_keyframe * n_keyframes + (n_frames - n_keyframes) + 1


def assemble(is_keyframe: list[bool], keyframe_tokens: torch.Tensor, merged: torch.Tensor) -> torch.Tensor:
    """[L, C] in time order: frame n contributes its keyframe grid [M, C] or its single merged token.

    `keyframe_tokens` [K, M, C] and `merged` [N − K, C] are in time order. The image_newline token is not
    included: the backbone appends it after the whole video (official layout, no per-frame separators).
    """
    n_kf = sum(is_keyframe)
    if keyframe_tokens.shape[0] != n_kf or merged.shape[0] != len(is_keyframe) - n_kf:
        raise ValueError(f"{n_kf} keyframes / {len(is_keyframe) - n_kf} non-keyframes do not match tokens "
                         f"{list(keyframe_tokens.shape)} and {list(merged.shape)}")
    parts, k, m = [], 0, 0
    for kf in is_keyframe:
        if kf:
            parts.append(keyframe_tokens[k])
            k += 1
        else:
            parts.append(merged[m : m + 1])
            m += 1
    if not parts:
        raise ValueError("no frames to assemble")
    return torch.cat(parts)
